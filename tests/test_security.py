"""Safe defaults: servers on 127.0.0.1, a login for the web UI and a key for the API when asked, paths typed
into the UI confined to the data / saves / models roots, no shell, no unsafe YAML, no remote code unless asked.
"""
from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import httpx
import psutil
import pytest

from engine import paths, runs
from engine.args import Namespace
from engine.config import load_config
from engine.errors import ConfigError
from engine.data import upload
from engine.errors import UserError
from helpers import free_port, serving, start_server, stop_group, wait_for
from kits.args import as_args

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_LIMIT = 4 << 20  # the web UI server's upload limit here: a refused file stays small
SOURCES = sorted(p for d in ("tuneboard", "engine", "webui", "bench", "tests")
                 for p in (ROOT / d).rglob("*.py")) + [ROOT / "app.py"]


# ---------------------------------------------------------------- source-level rules
def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield node, owner, name


def test_no_shell_anywhere():
    bad = []
    for path in SOURCES:
        for node, owner, name in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} shell=")
            if (owner, name) in {("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
                                 ("subprocess", "getstatusoutput")}:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {owner}.{name}")
    assert not bad, bad


def test_yaml_is_only_safe_loaded():
    bad = []
    for path in SOURCES:
        for node, owner, name in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            if owner == "yaml" and name in ("load", "load_all", "unsafe_load", "full_load", "unsafe_load_all"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno} yaml.{name}")
    assert not bad, bad


def test_a_yaml_recipe_cannot_run_code(tmp_path):
    marker = tmp_path / "ran"
    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"dataset: identity\nlearning_rate: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(recipe)
    assert not marker.exists()


def test_remote_code_runs_only_when_asked(tiny_model, tmp_path):
    """A model folder that ships code: refused by default (its code never imported), loaded when asked."""
    from engine.args import BY_NAME
    from engine.models.loader import load_model
    assert BY_NAME["trust_remote_code"].default is False and load_config(None, {"dataset": "x"}).trust_remote_code \
        is False
    d = tmp_path / "custom"
    shutil.copytree(tiny_model, d)
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(model_type="custom-llama", auto_map={"AutoConfig": "custom_code.CustomConfig",
                                                    "AutoModelForCausalLM": "custom_code.CustomModel"})
    (d / "config.json").write_text(json.dumps(cfg))
    marker = tmp_path / "imported"
    (d / "custom_code.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class CustomConfig(LlamaConfig):\n    model_type = 'custom-llama'\n"
        "class CustomModel(LlamaForCausalLM):\n    config_class = CustomConfig\n")
    with pytest.raises(UserError, match="ships its own code; set trust_remote_code=true"):
        load_model(as_args({"model_name_or_path": str(d)}, "infer"))
    assert not marker.exists()
    load_model(as_args({"model_name_or_path": str(d), "trust_remote_code": True}, "infer"))
    assert marker.exists()  # the switch really is what stands between the folder's code and this process


# ---------------------------------------------------------------- bind addresses, API key
def test_servers_default_to_loopback(monkeypatch):
    from engine import api
    from tuneboard.cli import COMMANDS, main
    from engine.cli import parse
    from webui.launch import server_options
    assert server_options(parse("webui", COMMANDS["webui"], []), {})["host"] == "127.0.0.1"
    assert api.host_port(parse("api", COMMANDS["api"], []), {}) == ("127.0.0.1", 8000)
    # `tuneboard api` hands that host to uvicorn (no model loaded: the engine and server are stand-ins)
    seen = {}
    monkeypatch.delenv("API_HOST", raising=False)
    monkeypatch.setattr("engine.api.ChatEngine", lambda args: type("E", (), {"args": args})())
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: seen.update(kw))
    monkeypatch.setattr(api, "_check_port_free", lambda host, port: None)
    assert main(["api"]) == 0
    assert seen["host"] == "127.0.0.1"


def test_api_key_guards_every_v1_route():
    from engine.api import create_app, start_server_thread
    # no model: nothing here gets past the key (the worker only needs to know it would answer one at a time)
    engine = type("E", (), {"args": Namespace({"model_name_or_path": "models/tiny"}), "batches": False})()
    srv, thread, port = start_server_thread(create_app(engine, api_key="sk-secret"))
    try:
        assert srv.servers[0].sockets[0].getsockname()[0] == "127.0.0.1"
        url = f"http://127.0.0.1:{port}"
        body = {"messages": [{"role": "user", "content": "hi"}]}
        for r in (httpx.get(url + "/v1/models"), httpx.get(url + "/v1/models/tiny"),
                  httpx.post(url + "/v1/chat/completions", json=body),
                  httpx.get(url + "/v1/models", headers={"Authorization": "Bearer sk-wrong"}),
                  httpx.get(url + "/v1/models", headers={"Authorization": "sk-secret"})):
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", r.text
        ok = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer sk-secret"})
        assert ok.status_code == 200 and ok.json()["data"][0]["id"] == "tiny"
    finally:
        srv.should_exit = True
        thread.join(30)


# ---------------------------------------------------------------- the web UI behind a login
@pytest.fixture(scope="module")
def ui_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("secure-ui")
    auth = base / "users.txt"
    auth.write_text("# who may log in\nalice:s3cret-pass\n")
    port = free_port()
    proc = start_server(["app.py", "--port", str(port), "--auth-file", str(auth)], base / "server.log",
                        {paths.SAVES_ENV: str(base / "saves"), upload.MAX_UPLOAD_ENV: str(UPLOAD_LIMIT)},
                        drop=("GRADIO_SERVER_NAME", paths.ROOTS_ENV))
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(serving(proc, url + "/", base / "server.log"), 120, "the web UI to answer")
        yield {"url": url, "proc": proc, "log": base / "server.log"}
    finally:
        stop_group(proc)


def test_web_ui_listens_on_loopback_only(ui_server):
    listening = [c.laddr for c in psutil.Process(ui_server["proc"].pid).net_connections("inet")
                 if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip in ("127.0.0.1", "::1") for addr in listening), listening


def test_web_ui_login(ui_server):
    url = ui_server["url"]
    assert httpx.get(url + "/config").status_code == 401  # nothing of the app without logging in
    assert httpx.post(url + "/login", data={"username": "alice", "password": "wrong"}).status_code in (400, 401)
    with httpx.Client() as c:
        assert c.post(url + "/login", data={"username": "alice", "password": "s3cret-pass"}).status_code == 200
        assert c.get(url + "/config").status_code == 200
        # gradio's file route serves no file of the machine, however the path is spelled
        for p in ("/etc/passwd", str(ROOT / "engine" / "config.py"), "engine/config.py", "../../../etc/passwd",
                  "%2e%2e/%2e%2e/etc/passwd"):
            r = c.get(f"{url}/gradio_api/file={p}")
            assert r.status_code in (403, 404), (p, r.status_code)
            assert "root:" not in r.text and "ConfigError" not in r.text


def test_upload_route_refuses_files_over_the_limit(ui_server):
    """gradio's route refuses what the Data tab would refuse (engine.data.upload's limit, small here)."""
    url = ui_server["url"]
    with httpx.Client(timeout=60) as c:
        assert c.post(url + "/login", data={"username": "alice", "password": "s3cret-pass"}).status_code == 200
        small = c.post(url + "/gradio_api/upload", files={"files": ("small.txt", b"hello")})
        assert small.status_code == 200, small.text
        big = c.post(url + "/gradio_api/upload", files={"files": ("big.bin", bytes(UPLOAD_LIMIT + (1 << 20)))})
        assert big.status_code == 413 and "maximum allowed size" in big.text
    assert psutil.Process(ui_server["proc"].pid).is_running()


def test_auth_flags():
    from engine.cli import parse
    from tuneboard.cli import COMMANDS
    from webui.launch import read_auth_file, server_options

    def parse_flags(argv, env):
        return server_options(parse("webui", COMMANDS["webui"], argv), env)
    assert parse_flags(["--auth", "bob:pw"], {})["auth"] == [("bob", "pw")]
    for bad in ("bob", "bob:", ":pw"):
        with pytest.raises(UserError, match="USER:PASSWORD"):
            parse_flags(["--auth", bad], {})
    with pytest.raises(UserError, match="auth-file"):
        read_auth_file("/nonexistent/users.txt")


# ---------------------------------------------------------------- paths typed into the UI
@pytest.fixture
def demo(tmp_path, monkeypatch):
    from webui.app import create_ui
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv(paths.SAVES_ENV, str(tmp_path / "saves"))
    monkeypatch.delenv(paths.ROOTS_ENV, raising=False)
    return create_ui("en", saves=str(tmp_path / "saves"))


def _call(demo, comp, values: dict, event="click"):
    fn = next(f for f in demo.fns.values() if any(t == comp._id and e == event for t, e in f.targets))
    data = {c: getattr(c, "value", None) for c in fn.inputs}
    data.update(values)
    if fn.inputs_as_dict:
        return fn.fn(data)
    return fn.fn(*[data[c] for c in fn.inputs])


def _text(update):
    return str(update["value"] if isinstance(update, dict) else update)


def test_confine_unit(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    saves = tmp_path / "saves"
    saves.mkdir()
    assert paths.confine(str(saves / "a" / "b"), "output_dir", paths.WRITE, saves)
    assert paths.confine("data/../data/identity.json", "dataset_dir")
    assert paths.confine("examples/deepspeed/ds_z2_config.json", "deepspeed")
    for bad, mode in ((str(saves / ".." / "escape"), paths.WRITE), ("data/../engine", paths.READ), ("/etc", paths.READ),
                      ("~/.ssh", paths.READ), ("examples/x.yaml", paths.WRITE)):
        with pytest.raises(ConfigError) as e:
            paths.confine(bad, "output_dir", mode, saves)
        assert e.value.field == "output_dir" and "outside the folders the web UI may" in str(e.value)
    (saves / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a symlink out is still out
    with pytest.raises(ConfigError):
        paths.confine(str(saves / "link" / "run"), "output_dir", paths.WRITE, saves)
    # names that are not paths: a hub id is resolved into models/ or the hub cache; resume=true is a flag
    assert paths.confine("HuggingFaceTB/SmolLM2-135M-Instruct", "model_name_or_path")
    assert paths.confine("true", "resume_from_checkpoint")
    assert paths.check_values({"adapter_name_or_path": ["saves/x", "/etc/ssl"]}, saves)["adapter_name_or_path"]
    monkeypatch.setenv(paths.ROOTS_ENV, str(tmp_path))
    assert paths.confine(str(tmp_path / "elsewhere"), "output_dir", paths.WRITE, saves)


def test_ui_refuses_paths_outside_the_roots(demo, tmp_path):
    page = demo.page
    outside = tmp_path / "outside"
    # Start: nothing starts, the field is named
    for field, value in (("output_dir", str(outside / "run")), ("model_name_or_path", "/etc")):
        comp = page.w("train" if field == "output_dir" else "top", field)
        res = _call(demo, page.c("train.start"), {page.w("train", "dataset"): ["identity"], comp: value})
        msg = _text(res[page.c("train.message")])
        assert field in msg and "outside the folders" in msg, msg
        assert res[comp]["info"].startswith("✗")
    assert runs.all_runs(page.saves) == [] and not outside.exists()
    # `..` out of the saves folder is the same folder outside
    res = _call(demo, page.c("train.start"), {page.w("train", "dataset"): ["identity"],
                                              page.w("train", "output_dir"): str(Path(page.saves) / ".." / "x")})
    assert "outside the folders" in _text(res[page.c("train.message")]) and not (tmp_path / "x").exists()
    # Save / Load arguments: the config file too
    res = _call(demo, page.c("train.save"), {page.c("train.config_path"): str(outside / "c.yaml"),
                                             page.w("train", "dataset"): ["identity"]})
    assert "outside the folders" in _text(res[page.c("train.message")]) and not (outside / "c.yaml").exists()
    res = _call(demo, page.c("train.load"), {page.c("train.config_path"): "/etc/passwd"})
    assert "outside the folders" in _text(res[page.c("train.message")])
    # a dataset folder outside is not listed nor previewed
    fn, inputs, outputs = demo.studio.train.dataset_refresh
    upd, parts, md = fn("/etc", "sft", [], "en")
    assert upd["choices"] == [] and "outside the folders" in md
    # the chat tab does not load a model from there either
    res = _call(demo, page.c("chat.load"), {page.w("top", "model_name_or_path"): "/usr/lib",
                                            page.w("top", "adapter_name_or_path"): ["/etc/ssl"]})
    last = list(res)[-1]
    assert "outside the folders" in _text(last[page.c("chat.info")])


def test_ui_accepts_paths_inside_the_roots(demo):
    page = demo.page
    cfg = Path(page.saves) / "configs" / "mine.yaml"
    res = _call(demo, page.c("train.save"), {page.c("train.config_path"): str(cfg),
                                             page.w("train", "dataset"): ["identity"],
                                             page.w("train", "deepspeed"): "examples/deepspeed/ds_z2_config.json"})
    assert cfg.is_file(), _text(res[page.c("train.message")])
    res = _call(demo, page.c("train.load"), {page.c("train.config_path"): "examples/train_lora/smollm2_lora_sft.yaml"})
    assert "outside" not in _text(res[page.c("train.message")])
