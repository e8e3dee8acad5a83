"""Driving the web UI built in-process (no server, no browser): a handler is called exactly as gradio calls it,
the BlockFunction registered for a component's event, with {component: value} for set-style inputs."""
from __future__ import annotations

import gradio as gr

from engine import paths


def build(tmp_path, monkeypatch):
    """The whole page, its saves and the folders it may read under tmp_path (the `demo` fixture of conftest)."""
    from webui.app import create_ui
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    monkeypatch.setenv("TUNEBOARD_ROOTS", str(tmp_path))  # the tests' folders are allowed UI paths
    return create_ui("en", saves=str(tmp_path / "saves"))


def handler(demo, comp, event="click"):
    for fn in demo.fns.values():
        if any(tid == comp._id and ev == event for tid, ev in fn.targets):
            return fn
    raise AssertionError(f"no {event} handler on {comp}")


def state(demo, overrides=None) -> dict:
    """{component: value} for every component of the page, as the browser would send it untouched."""
    data = {}
    for block in demo.blocks.values():
        if isinstance(block, gr.components.Component):
            data[block] = getattr(block, "value", None)
    for comp, v in (overrides or {}).items():
        data[comp] = v
    return data


def call(demo, comp, event="click", overrides=None):
    fn = handler(demo, comp, event)
    data = state(demo, overrides)
    if fn.inputs_as_dict:
        return fn.fn({c: data.get(c) for c in fn.inputs})
    return fn.fn(*[data.get(c) for c in fn.inputs])


def value(update):
    return update["value"] if isinstance(update, dict) else update
