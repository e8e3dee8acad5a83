"""Shared fixtures. The tiny model is a random 2-layer Llama on the bundled SmolLM2 tokenizer:
same vocabulary and chat template as the real model, trains in well under a second per step."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "SmolLM2-135M-Instruct"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one xdist worker per core: one torch thread each (inherited by the runs they spawn), so
    # the workers' thread pools do not oversubscribe the cores (measured with it: 680 tests in ~10 min on 2 cores).
    os.environ.setdefault("OMP_NUM_THREADS", "1")


from modelkit import build_lora_adapter, build_tiny_model, train_identity_adapter  # noqa: E402,F401


@pytest.fixture(autouse=True)
def insight_words_are_filled(monkeypatch):
    """Every word engine.insight shows is given the numbers it names: a placeholder left out fails the test
    (in use it would show as a stand-in, never as "?")."""
    from engine.insight import words

    def missing(key):
        raise AssertionError(f"engine.insight words: no value for {{{key}}}")
    monkeypatch.setattr(words, "missing", missing)


@pytest.fixture(scope="session")
def tiny_adapter(tmp_path_factory, tiny_model) -> Path:
    """A random LoRA adapter (rank 4, all linear layers) for the tiny model."""
    return build_lora_adapter(tiny_model, tmp_path_factory.mktemp("tiny-lora") / "adapter")


@pytest.fixture(scope="session")
def bundled_model() -> Path:
    if not (BUNDLED / "model.safetensors").is_file():
        pytest.fail("bundled model missing: run `make model` (make test does it)")
    return BUNDLED


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, bundled_model) -> Path:
    """Path to a tiny random Llama (2 layers, hidden 64) sharing the bundled tokenizer."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-llama")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return ROOT / "data"


@pytest.fixture(scope="session")
def identity_adapter(bundled_model, data_dir, tmp_path_factory) -> Path:
    """The real model taught a new name (modelkit.IDENTITY_RUN), trained once per session and only when a
    collected test asks for it: test_e2e_bundled checks what it learned, the browser tests chat with it and
    export it. Tests read it; one that wants to change it copies it first."""
    return train_identity_adapter(bundled_model, data_dir, tmp_path_factory.mktemp("identity") / "run")


@pytest.fixture
def demo(tmp_path, monkeypatch):
    """The whole web UI built in-process, its saves and the folders it may read under tmp_path (kits.webui.call
    presses its buttons)."""
    from kits.webui import build  # gradio: only for the tests that build the page
    return build(tmp_path, monkeypatch)


@pytest.fixture
def saves(tmp_path, monkeypatch):
    """A saves folder of the test's own for the runs it starts; whatever failed, no process is left behind."""
    from engine import paths, runs
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    monkeypatch.setattr(runs, "_POPENS", {})
    yield tmp_path / "saves"
    for r in runs.all_runs(tmp_path / "saves"):
        r.abort(grace=2)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's training runs: on a shared 2-core machine several threads per process
    only fight each other."""
    import torch
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
