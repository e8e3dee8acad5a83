"""Serving and prediction speed on the bundled model (SmolLM2-135M-Instruct, fp32).

    flock /work/locks/heavy.lock .venv/bin/python bench/serve_speed.py chat eval api
    flock /work/locks/heavy.lock .venv/bin/python bench/serve_speed.py api --peer /work/peer/venv
    .venv/bin/python bench/serve_speed.py chat eval --engine /tmp/base     # the same with another checkout's engine

chat  tokens/s of a 64-token greedy answer streamed by ChatEngine (what the Chat tab shows), median of 3 after a
      warm-up.
eval  `tuneboard eval` on 8 alpaca_en_demo samples, batch 4, 32 new tokens, greedy: the tokens/s it reports
      (completion tokens / generation time).
api   `tuneboard api` in its own process; rounds of 1, 8 and 32 concurrent streamed requests (distinct prompts,
      greedy, max_tokens 64, one explicit system prompt): aggregate tokens/s (tokens of every answer, counted with
      the model's tokenizer, / the round's wall time) and p50 / p95 request latency. --peer VENV runs the same
      rounds against LLaMA-Factory's `llamafactory-cli api` from that venv on the same model, one after the other.
ab    chat and a batch of 4 eval prompts through the decoder and through transformers' generate (the fallback, and
      the only path before engine.batching), alternating in one process (--pairs rounds) so both see the same load.
--engine DIR runs chat / eval / api with the `engine` package of another checkout (before/after comparisons).
Prints markdown tables; writes bench/serve_results.json. Numbers depend on the machine's load: run it quietly.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = Path(os.environ.get("BENCH_MODEL") or ROOT / "models" / "SmolLM2-135M-Instruct")  # BENCH_MODEL: a smoke test
SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face."
CHAT_Q = "Write a short story about a robot who learns to paint."
TOPICS = ["a lighthouse keeper", "a lost kitten", "a city garden", "a rainy market", "a mountain train",
          "a clockmaker", "a river ferry", "a desert well", "a paper kite", "a night bakery", "a snowy village",
          "a school choir", "a broken radio", "a tiny island", "a chess club", "a painter's dog"]
STREAMS = (1, 8, 32)


def _child(args: list[str], engine_dir: Path | None) -> dict:
    """Run this script's --one mode in a fresh process (its own memory, the chosen engine on sys.path)."""
    env = {**os.environ, "PYTHONPATH": str(engine_dir or ROOT), "TOKENIZERS_PARALLELISM": "false"}
    p = subprocess.run([sys.executable, __file__, "--one", *args], env=env, capture_output=True, text=True)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode or not line:
        raise SystemExit(f"{args}: failed\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return json.loads(line[-1][7:])


def _infer_args(**values):
    from engine.config import load_config
    return load_config(None, {"model_name_or_path": str(MODEL), "template": "chatml",
                              **{k: str(v) for k, v in values.items()}}, command="infer")


def one_chat() -> dict:
    from engine.chat import ChatEngine
    e = ChatEngine(_infer_args())
    q = [{"role": "user", "content": CHAT_Q}]
    list(e.stream(q, max_new_tokens=16, do_sample=False))  # warm-up
    rates, n = [], 0
    for _ in range(3):
        t0 = time.perf_counter()
        text = "".join(e.stream(q, max_new_tokens=64, do_sample=False))
        dt = time.perf_counter() - t0
        n = e.last_stats["completion_tokens"]
        rates.append(n / dt)
    return {"chat_tokens_per_s": round(statistics.median(rates), 2), "chat_tokens": n, "chat_text": text[:80]}


def one_ab(pairs: int) -> dict:
    """The decoder against transformers' generate (the path models that cannot batch still take, and the only
    path before engine.batching) in one process, alternating, so both see the same machine load: a 64-token
    greedy chat answer, and a batch of 4 eval prompts x 32 new tokens."""
    from engine.chat import ChatEngine
    from engine.evaluate import load_eval_examples
    e = ChatEngine(_infer_args())
    q = [{"role": "user", "content": CHAT_Q}]
    convs = [p for p, _ in load_eval_examples(_infer_args(eval_dataset="alpaca_en_demo", dataset_dir=ROOT / "data",
                                                          max_samples=4, cutoff_len=1024))]

    def chat() -> float:
        t0 = time.perf_counter()
        "".join(e.stream(q, max_new_tokens=64, do_sample=False))
        return e.last_stats["completion_tokens"] / (time.perf_counter() - t0)

    def batch() -> float:
        t0 = time.perf_counter()
        n = sum(r.completion_tokens for r in e.batch(convs, max_new_tokens=32, do_sample=False))
        return n / (time.perf_counter() - t0)

    out: dict = {"decoder": {"chat": [], "batch": []}, "generate": {"chat": [], "batch": []}}
    for i in range(pairs + 1):
        for path in ("decoder", "generate") if i % 2 else ("generate", "decoder"):
            e._batches = path == "decoder"
            c, b = chat(), batch()
            if i:  # the first round warms both paths up
                out[path]["chat"].append(round(c, 2))
                out[path]["batch"].append(round(b, 2))
    return {path: {k: {"median": round(statistics.median(v), 2), "runs": v} for k, v in d.items()}
            for path, d in out.items()}


def one_eval(out: str) -> dict:
    from engine.config import load_config
    from engine.evaluate import evaluate
    args = load_config(None, [f"model_name_or_path={MODEL}", "template=chatml", "eval_dataset=alpaca_en_demo",
                              "max_samples=8", "per_device_eval_batch_size=4", "max_new_tokens=32",
                              f"output_dir={out}"], command="infer")
    r = evaluate(args, out=lambda s: None)
    return {"eval_tokens_per_s": r["tokens_per_second"], "eval_generate_s": r["generate_s"],
            "eval_completion_tokens": r["completion_tokens"], "eval_samples": r["samples"]}


# ---------------------------------------------------------------- the API rounds

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(kind: str, port: int, engine_dir: Path | None, peer: Path | None, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "API_HOST": "127.0.0.1", "API_PORT": str(port)}
    env.pop("API_KEY", None)
    if kind == "tuneboard":
        env["PYTHONPATH"] = str(engine_dir or ROOT)
        cmd = [sys.executable, "-m", "tuneboard", "api", f"model_name_or_path={MODEL}", "template=chatml",
               "--port", str(port)]
    else:  # the peer reads a YAML recipe; its CLI is only ever run as a command
        env.pop("PYTHONPATH", None)
        recipe = log.with_suffix(".yaml")
        recipe.write_text(f"model_name_or_path: {MODEL}\ntemplate: smollm2\ninfer_backend: huggingface\n")
        cmd = [str(peer / "bin" / "llamafactory-cli"), "api", str(recipe)]
    with open(log, "wb") as f:  # `python -m` puts its working folder first on sys.path: the engine's checkout
        return subprocess.Popen(cmd, cwd=engine_dir or ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 600) -> None:
    import httpx
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url + "/v1/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the server did not answer within {timeout:.0f} s:\n{log.read_text(errors='replace')[-3000:]}")


async def _ask(client, url: str, i: int) -> dict:
    body = {"model": "default", "stream": True, "max_tokens": 64, "temperature": 0, "do_sample": False,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": f"Write a short story about {TOPICS[i % len(TOPICS)]}."}]}
    t0 = time.perf_counter()
    first, parts = None, []
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:300]!r}")
        async for line in r.aiter_lines():
            line = line.strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            for ch in json.loads(data).get("choices") or []:
                piece = (ch.get("delta") or {}).get("content") or ""
                if piece and first is None:
                    first = time.perf_counter() - t0
                parts.append(piece)
    return {"latency": time.perf_counter() - t0, "ttft": first, "text": "".join(parts)}


async def _round(url: str, n: int) -> tuple[float, list[dict]]:
    import httpx
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=httpx.Timeout(1800), limits=limits) as client:
        t0 = time.perf_counter()
        res = await asyncio.gather(*(_ask(client, url, i) for i in range(n)))
        return time.perf_counter() - t0, res


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def api_rounds(kind: str, engine_dir: Path | None, peer: Path | None, tmp: Path) -> list[dict]:
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(MODEL)
    port = _free_port()
    log = tmp / f"{kind}.log"
    proc = _start(kind, port, engine_dir, peer, log)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        _wait_up(proc, url, log)
        asyncio.run(_round(url, 1))  # warm-up
        for n in STREAMS:
            wall, res = asyncio.run(_round(url, n))
            tokens = [len(tok.encode(r["text"], add_special_tokens=False)) for r in res]
            lat = [r["latency"] for r in res]
            rows.append({"server": kind, "streams": n, "tokens": sum(tokens), "wall_s": round(wall, 2),
                         "aggregate_tokens_per_s": round(sum(tokens) / wall, 2),
                         "p50_latency_s": round(_pct(lat, 0.5), 2), "p95_latency_s": round(_pct(lat, 0.95), 2),
                         "p50_ttft_s": round(_pct([r["ttft"] or r["latency"] for r in res], 0.5), 2),
                         "texts": [r["text"] for r in res]})
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "texts"}), flush=True)
    finally:
        import signal
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
    return rows


# ---------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="*", help="chat, eval, api (default: all three)")
    ap.add_argument("--engine", type=Path, help="a checkout whose engine/ to measure instead of this one")
    ap.add_argument("--peer", type=Path, help="LLaMA-Factory's venv: also measure `llamafactory-cli api`")
    ap.add_argument("--pairs", type=int, default=6, help="ab: alternating rounds of each path")
    ap.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        kind = a.one[0]
        res = one_chat() if kind == "chat" else one_ab(int(a.one[1])) if kind == "ab" else one_eval(a.one[1])
        print("RESULT " + json.dumps(res), flush=True)
        return
    a.what = a.what or ["chat", "eval", "api"]
    if set(a.what) - {"chat", "eval", "api", "ab"}:
        ap.error(f"what: choose among chat, eval, api, ab (got {' '.join(a.what)})")
    out: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "engine": str(a.engine or ROOT),
                 "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=a.engine or ROOT,
                                          capture_output=True, text=True).stdout.strip(),
                 "load": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        if "chat" in a.what:
            out["chat"] = _child(["chat"], a.engine)
            print(json.dumps(out["chat"]), flush=True)
        if "eval" in a.what:
            out["eval"] = _child(["eval", str(Path(tmp) / "eval")], a.engine)
            print(json.dumps(out["eval"]), flush=True)
        if "ab" in a.what:
            out["ab"] = _child(["ab", str(a.pairs)], a.engine)
            print(json.dumps(out["ab"]), flush=True)
        if "api" in a.what:
            out["api"] = api_rounds("tuneboard", a.engine, None, Path(tmp))
            if a.peer:
                out["api"] += api_rounds("llamafactory", None, a.peer, Path(tmp))
    out["load_after"] = os.getloadavg()
    if "ab" in out:
        print("\n| path | chat tokens/s (64-token greedy, median) | batch-4 eval tokens/s (median) |\n|---|---|---|")
        for path, d in out["ab"].items():
            print(f"| {path} | {d['chat']['median']} | {d['batch']['median']} |")
    if "chat" in out or "eval" in out:
        print("\n| chat tokens/s (64-token greedy) | eval tokens/s (8 x 32, batch 4) |\n|---|---|")
        print(f"| {out.get('chat', {}).get('chat_tokens_per_s', '-')} | "
              f"{out.get('eval', {}).get('eval_tokens_per_s', '-')} |")
    if out.get("api"):
        print("\n| server | streams | aggregate tokens/s | p50 latency s | p95 latency s | p50 first token s |")
        print("|---|---|---|---|---|---|")
        for r in out["api"]:
            print(f"| {r['server']} | {r['streams']} | {r['aggregate_tokens_per_s']} | {r['p50_latency_s']} | "
                  f"{r['p95_latency_s']} | {r['p50_ttft_s']} |")
    if out.get("api"):  # greedy answers should not depend on what else ran in the batch (nor on the server)
        first: dict = {}
        for r in out["api"]:
            same = [first.setdefault((r["server"], i % len(TOPICS)), t) == t for i, t in enumerate(r["texts"])]
            print(f"{r['server']}, {r['streams']} streams: {sum(same)}/{len(same)} answers equal to the same "
                  "prompt's answer in the earlier rounds")
        by = {(r["server"], r["streams"]): r["texts"] for r in out["api"]}
        for n in STREAMS:
            if ("llamafactory", n) in by:
                same = sum(a == b for a, b in zip(by[("tuneboard", n)], by[("llamafactory", n)]))
                print(f"{n} streams: {same}/{n} answers identical between tuneboard and llamafactory")
    (ROOT / "bench" / "serve_results.json").write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
