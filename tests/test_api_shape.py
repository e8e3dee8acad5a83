"""engine/api.py as objects: request models at module level, routes on an APIRouter that takes the generation
worker (tests/test_shape.py keeps its functions short enough that no closure-built app hides again)."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from engine import api
from engine.args import Namespace


def test_the_request_model_is_a_module_class_that_validates_alone():
    req = api.ChatRequest.model_validate({"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                                          "temperature": 0, "stop": "END", "max_tokens": 5})
    call = api.Call.of(req)
    assert call.messages == [{"role": "user", "content": "hi"}] and call.system is None and call.tools is None
    assert call.gen == {"max_new_tokens": 5, "do_sample": False, "stop": ["END"]}


def test_the_router_serves_the_worker_it_was_given():
    """Routes takes a worker, not a closure's variables: its router mounted on a bare app answers from that
    worker (waiting requests, the served name) and guards /v1 with the key it was given."""
    engine = type("E", (), {"args": Namespace({"model_name_or_path": "models/tiny"}), "batches": False})()
    worker = api.GenerationWorker(engine)
    served, aliases = api.model_names(engine.args)
    routes = api.Routes(worker, served, aliases, key="sk-k")
    worker.queued.append(None)  # one request waiting (the worker thread is not started: nothing takes it)
    app = FastAPI()
    api.add_error_handlers(app)
    app.include_router(routes.router)
    with TestClient(app) as client:
        health = client.get("/health").json()
        assert (health["model"], health["waiting"], health["running"]) == ("tiny", 1, 0)
        assert client.get("/v1/models").status_code == 401
        listed = client.get("/v1/models", headers={"Authorization": "Bearer sk-k"})
        assert listed.status_code == 200 and listed.json()["data"][0]["id"] == "tiny"
