"""`tuneboard eval [recipe.yaml] [key=value ...]`: batched generation over a dataset, then metrics.

For each sample the conversation up to the last assistant turn is the prompt and that turn is the label.
Files written into output_dir:
  generated_predictions.jsonl  {"prompt", "label", "predict"} per line, appended batch by batch
  predict_results.json         BLEU-4, ROUGE-1/2/L, exact-match accuracy (percent; see engine.metrics),
                               samples, throughput, timings and what was evaluated
  status.json                  {"state", "done", "total", ...} rewritten atomically after every batch; state is
                               loading -> running -> finished | failed | aborted (same file the web UI reads
                               for training runs, same final states)
  eval_args.yaml               the resolved arguments

Decoding is greedy unless do_sample is given explicitly: a score should not change from one run to the next.
The data set is eval_dataset when set, else dataset.
"""
from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from .args import Namespace
from .chat import ChatEngine
from .config import load_config, save_config
from .data.loader import load_examples
from .errors import ConfigError, UserError
from .metrics import MetricAccumulator
from .paths import default_output_dir, run_name
from .train.rundir import EVAL_CONFIG as CONFIG, EVAL_RESULTS as RESULTS  # the names tests and callers use here
from .train.rundir import PREDICTIONS, run_evidence, status_file, write_status
from .utils import atomic_write_json, clock, get_logger

log = get_logger("tuneboard.eval")


class Aborted(Exception):
    """SIGTERM (the web UI's Abort) or Ctrl-C during an evaluation."""


def eval_datasets(values: dict) -> list[str]:
    names = values.get("eval_dataset") or values.get("dataset")
    if not names:
        raise ConfigError("eval_dataset: no dataset to evaluate on; set eval_dataset (or dataset) to names from "
                          "dataset_info.json, for example eval_dataset=sentiment_en_test.", "eval_dataset")
    return list(names)


def resolve_output_dir(values: dict) -> Path:
    out = values.get("output_dir") or default_output_dir(values["model_name_or_path"],
                                                          values.get("finetuning_type") or "lora", run_name("eval"))
    p = Path(out)
    # never write status.json & co. over a training run's files (e.g. output_dir = the adapter folder)
    marker = run_evidence(p)
    if marker:
        raise ConfigError(f"output_dir: {p} holds a training run ({marker}); evaluate into another folder, "
                          f"for example output_dir={p / 'eval'}.", "output_dir")
    if p.exists() and not p.is_dir():
        raise ConfigError(f"output_dir: {p} is a file; give a folder.", "output_dir")
    return p


def split_example(row: dict, index: int) -> tuple[list[dict], str]:
    """(prompt messages, label): everything before the last assistant turn, and that turn."""
    msgs = list(row.get("messages") or [])
    if not msgs or msgs[-1].get("role") != "assistant":
        raise UserError(f"sample {index}: has no assistant answer to use as the label.")
    prompt = [{"role": m["role"], "content": m["content"]} for m in msgs[:-1]]
    system = row.get("system")
    if system:
        prompt = [{"role": "system", "content": system}] + prompt
    return prompt, msgs[-1]["content"]


def prompt_text(prompt: list[dict]) -> str:
    """What generated_predictions.jsonl shows as the prompt: the question, or the turns of a conversation."""
    turns = [m for m in prompt if m["role"] != "system"]
    if len(turns) == 1:
        return turns[0]["content"]
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def load_eval_examples(args: Namespace) -> list[tuple[list[dict], str]]:
    names = eval_datasets(args.values)
    ds = load_examples(names, args, stage="sft")  # max_samples applies per dataset there
    rows = ds.to_list()
    if not rows:
        raise UserError(f"eval_dataset: {', '.join(names)} gave no samples to evaluate.")
    return [split_example(r, i) for i, r in enumerate(rows)]


def generation_settings(args: Namespace) -> dict:
    """Generation keyword arguments for ChatEngine.batch: greedy unless do_sample was asked for explicitly."""
    v = args.values
    sample = bool(v.get("do_sample")) and "do_sample" in args.explicit
    gen = {"max_new_tokens": v.get("max_new_tokens"), "do_sample": sample}
    if sample:
        gen.update(temperature=v.get("temperature"), top_p=v.get("top_p"), top_k=v.get("top_k"), seed=v.get("seed"))
    if v.get("repetition_penalty") is not None:
        gen["repetition_penalty"] = v["repetition_penalty"]
    return {k: x for k, x in gen.items() if x is not None}


def evaluate(args: Namespace, engine=None, out: Callable[[str], None] | None = None) -> dict:
    """Run the evaluation described by `args` (the validated Namespace); returns predict_results.json's content.
    `engine`: an already loaded ChatEngine to reuse (tests, the web UI); otherwise one is loaded."""

    say = out or (lambda s: print(s, flush=True))
    t_start = time.time()
    values = dict(args.values)
    out_dir = resolve_output_dir(values)
    out_dir.mkdir(parents=True, exist_ok=True)
    status_file(out_dir).unlink(missing_ok=True)  # a previous run's error/fields must not leak in
    write_status(out_dir, "loading", done=0, total=None, step=0, total_steps=None, started=t_start)
    gen = generation_settings(args)
    saved = dict(args.values, do_sample=gen["do_sample"])  # greedy-by-default made explicit: a rerun matches
    save_config(saved, out_dir / CONFIG, command="infer")
    done = total = 0
    try:
        examples = load_eval_examples(args)
        total = len(examples)
        write_status(out_dir, "loading", done=0, total=total, step=0, total_steps=total)
        say(f"[eval] {total} samples from {', '.join(eval_datasets(values))}; loading the model")
        if engine is None:
            engine = ChatEngine(args)
        load_s = time.time() - t_start
        bs = max(1, int(values.get("per_device_eval_batch_size") or 1))
        acc = MetricAccumulator()
        gen_s, completion_tokens, prompt_tokens = 0.0, 0, 0
        write_status(out_dir, "running", done=0, total=total, step=0, total_steps=total, elapsed=0.0)
        say(f"[eval] generating: batch {bs}, max_new_tokens {gen.get('max_new_tokens')}, "
            f"{'sampling' if gen.get('do_sample') else 'greedy'}; predictions -> {out_dir / PREDICTIONS}")
        with open(out_dir / PREDICTIONS, "w", encoding="utf-8") as f:
            for start in range(0, total, bs):
                batch = examples[start:start + bs]
                t0 = time.perf_counter()
                try:
                    responses = engine.batch([p for p, _ in batch], **gen)
                except UserError as e:
                    raise UserError(f"samples {start}-{start + len(batch) - 1}: {e}") from None
                gen_s += time.perf_counter() - t0
                for (prompt, label), r in zip(batch, responses, strict=True):
                    acc.add(r.text, label)
                    completion_tokens += r.completion_tokens
                    prompt_tokens += r.prompt_tokens
                    f.write(json.dumps({"prompt": prompt_text(prompt), "label": label, "predict": r.text},
                                       ensure_ascii=False) + "\n")
                f.flush()
                done += len(batch)
                rate = done / gen_s if gen_s > 0 else 0.0
                remaining = (total - done) / rate if rate > 0 else None
                write_status(out_dir, "running", done=done, total=total, step=done, total_steps=total,
                             elapsed=round(time.time() - t_start, 2),
                             remaining=round(remaining, 2) if remaining is not None else None)
                say(f"[eval] {done}/{total} ({100 * done / total:.0f}%)  {rate:.2f} samples/s  "
                    f"{completion_tokens / gen_s if gen_s > 0 else 0:.1f} tokens/s  "
                    f"elapsed {clock(time.time() - t_start)}  remaining {clock(remaining)}")
        elapsed = time.time() - t_start
        results = {
            **acc.result(),
            "samples": total,
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "samples_per_second": round(total / gen_s, 4) if gen_s > 0 else 0.0,
            "tokens_per_second": round(completion_tokens / gen_s, 2) if gen_s > 0 else 0.0,
            "generate_s": round(gen_s, 3),
            "load_s": round(load_s, 3),
            "elapsed_s": round(elapsed, 3),
            "model": values.get("model_name_or_path"),
            "adapter": ",".join(values.get("adapter_name_or_path") or []) or None,
            "dataset": ",".join(eval_datasets(values)),
            "decoding": "sampling" if gen.get("do_sample") else "greedy",
            "max_new_tokens": gen.get("max_new_tokens"),
        }
        atomic_write_json(out_dir / RESULTS, results)
        write_status(out_dir, "finished", done=done, total=total, step=done, total_steps=total,
                     elapsed=round(elapsed, 2), remaining=0.0, error=None)
        say("[eval] " + "  ".join(f"{k} {results[k]:.2f}" for k in MetricAccumulator.KEYS)
            + f"  ({total} samples, {results['samples_per_second']:.2f} samples/s) -> {out_dir / RESULTS}")
        return results
    except (Aborted, KeyboardInterrupt):
        write_status(out_dir, "aborted", done=done, total=total, error="aborted by user",
                     elapsed=round(time.time() - t_start, 2))
        raise
    except BaseException as e:
        write_status(out_dir, "failed", done=done, total=total, error=str(e) or type(e).__name__,
                     elapsed=round(time.time() - t_start, 2))
        raise


def _raise_aborted(signum, frame):
    raise Aborted()


def run_cli(opts) -> int:
    """`tuneboard eval [recipe.yaml] [key=value ...]` (opts: parsed by engine.cli)."""
    args = load_config(opts.recipe, opts.overrides, command="infer")
    eval_datasets(args.values)  # a missing dataset is reported before anything is created
    if not args.values.get("output_dir"):
        args.values["output_dir"] = str(resolve_output_dir(args.values))
    old = signal.signal(signal.SIGTERM, _raise_aborted)
    try:
        evaluate(args)
    except Aborted:
        print("aborted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, old)
    return 0
