"""A stand-in OpenAI-style endpoint on loopback that misbehaves by the kind of record it is asked about (500s, fenced
or broken JSON, slow replies, repeats, records of the wrong shape, down until healed), and the seed records."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEY = "sk-test-7f3a9c-never-on-disk"
KINDS = ("flaky500", "fenced", "broken", "slow", "dup", "invalid", "down")
SLOW_S, TIMEOUT_S = 1.6, 1.0


def record(i: int) -> dict:
    return {"instruction": f"task {i} of kind {KINDS[i]}", "input": "", "output": f"the answer to task {i}"}


class StandIn:
    """An OpenAI-style /chat/completions that misbehaves by the kind of the record in the prompt; per record it
    counts the calls, so each answer is decided by (record, call number) alone."""

    def __init__(self):
        self.calls: dict[int, int] = {}
        self.requests = 0  # every POST, whatever its route
        self.auth: set = set()
        self.healed = False  # "down" answers 500 until healed
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests += 1
                if self.path != "/v1/chat/completions":
                    self.send_error(404, "no such route")
                    return
                owner.auth.add(self.headers.get("Authorization"))
                prompt = body["messages"][0]["content"]
                i = int(re.search(r"task (\d+) of kind", prompt).group(1))
                with owner.lock:
                    c = owner.calls[i] = owner.calls.get(i, 0) + 1
                status, text = owner.answer(i, c)
                if status == "slow":
                    time.sleep(SLOW_S)
                    status = 200
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}
                                  if status == 200 else {"error": {"message": text}}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow reply
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, i: int, c: int) -> tuple:
        kind = KINDS[i]
        new = json.dumps({"instruction": f"new task {i}, take {c}", "input": "", "output": f"answer {c}"})
        if kind == "flaky500":
            return (500, "overloaded") if c % 2 else (200, new)
        if kind == "fenced":
            return 200, f"Sure! Here it is:\n```json\n{new}\n```\nAnything else?"
        if kind == "broken":
            return 200, '{"instruction": "half a record", "output": '
        if kind == "slow":
            return ("slow", new) if c % 2 else (200, new)
        if kind == "dup":
            return 200, json.dumps(record(i))
        if kind == "invalid":
            return 200, json.dumps({"instruction": "no answer here"})
        return (200, new) if self.healed else (503, "down for maintenance")

    def close(self):
        self.server.shutdown()
