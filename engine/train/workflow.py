"""One training run, start to finish: setup -> data -> model -> fit -> save -> report.

pt and sft share this path with HF Trainer (they differ only in how examples are built, which
engine.data decides); rm, dpo and kto swap in trl's trainers (engine.train.rm / dpo / kto, each with its
trl config). Everything a run produces lands in output_dir.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

from . import rundir
from .best import best_metrics, best_model_args, early_stopping
from .callbacks import GracefulStop, RunLogCallback
from .extra import build
from .stages import config_class, get_stage, stage_module
from ..args import ARGS, Namespace
from ..config import ConfigError, compat_notes, save_config
from ..utils import UserError, atomic_write_json, device_info, get_logger, peak_rss_bytes

log = get_logger()


def _attach_running_log(output_dir: Path) -> None:
    """Mirror logs into running.log, unless stdout already goes there (the web UI redirects it)."""
    path = output_dir / rundir.RUNNING_LOG
    try:
        if path.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(path)):
            return
    except (OSError, ValueError):
        pass
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s", "%H:%M:%S"))
    for name in ("tuneboard", "transformers", "peft", "trl"):
        logging.getLogger(name).addHandler(handler)


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def resolve_resume(ns: Namespace, output_dir: Path) -> str | None:
    r = ns.resume_from_checkpoint
    if not r:
        return None
    if r.lower() in ("true", "last", "latest", "yes"):
        ckpt = rundir.last_checkpoint(output_dir)
        if ckpt is None:
            raise ConfigError(f"resume_from_checkpoint: {output_dir} has no complete checkpoint to resume from.",
                              "resume_from_checkpoint")
        _refuse_if_done(ns, ckpt)
        return str(ckpt)
    p = Path(r)
    if not p.is_dir() or not (p / "trainer_state.json").exists():
        raise ConfigError(f"resume_from_checkpoint: {r} is not a checkpoint folder (no trainer_state.json). "
                          f"Complete checkpoints here: {[c.name for c in rundir.checkpoints(output_dir)] or 'none'}.",
                          "resume_from_checkpoint")
    _refuse_if_done(ns, p)
    return str(p)


def _refuse_if_done(ns: Namespace, ckpt: Path) -> None:
    """A checkpoint that already reached the run's end: transformers would train one step past it (step N+1 of
    N), so say what to raise instead."""
    try:
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # unreadable state: let transformers report it
    step, planned = state.get("global_step"), state.get("max_steps")
    if not isinstance(step, int) or step <= 0:
        return
    if ns.max_steps and ns.max_steps > 0:
        done = step >= ns.max_steps
    else:  # epoch-based: the same epochs as the checkpoint's plan end where it ended
        done = (isinstance(planned, int) and step >= planned
                and float(state.get("num_train_epochs") or 0) == float(ns.num_train_epochs))
    if done:
        raise ConfigError(f"resume_from_checkpoint: {ckpt.name} is already at step {step}, the end of this run "
                          f"(max_steps={ns.max_steps}, num_train_epochs={ns.num_train_epochs}); raise max_steps or "
                          f"num_train_epochs to train further.", "resume_from_checkpoint")


def prepare_output_dir(ns: Namespace) -> tuple[Path, str | None]:
    out = Path(ns.output_dir)
    pid = rundir.active_pid(out) if _is_main() else None
    if pid:
        raise ConfigError(f"output_dir: a run is still going on in {out} (process {pid}); abort it first or "
                          f"choose another output_dir.", "output_dir")
    resume = resolve_resume(ns, out) if out.exists() else (
        None if not ns.resume_from_checkpoint else resolve_resume(ns, out))
    if rundir.holds_run(out) and not resume:
        if ns.overwrite_output_dir:
            log.warning("overwrite_output_dir: clearing the previous run in %s", out)
            if _is_main():
                rundir.clear_run(out)
        else:
            last = rundir.last_checkpoint(out)
            hint = (f" To continue it: resume_from_checkpoint=true (last checkpoint: {last.name})." if last else "")
            raise ConfigError(f"output_dir: {out} already holds another run. Choose a new output_dir, or set "
                              f"overwrite_output_dir=true to replace it.{hint}", "output_dir")
    out.mkdir(parents=True, exist_ok=True)
    return out, resume


def pick_precision(ns: Namespace) -> dict:
    dev = device_info()
    bf16, fp16 = ns.bf16, ns.fp16
    if bf16 and not dev["bf16"]:
        log.warning("bf16 requested but %s does not support it: training in fp32", dev["name"])
        bf16 = False
    if fp16 and dev["device"] == "cpu":
        log.warning("fp16 is not available on CPU: training in fp32 (bf16=true works on CPUs with AVX512-BF16)")
        fp16 = False
    return {"bf16": bf16, "fp16": fp16, "use_cpu": dev["device"] == "cpu", "device": dev}


def report_to(value: str | None) -> list[str]:
    """report_to as the Trainer takes it: "tensorboard,wandb" -> both; none -> no tracker."""
    names = [s.strip() for s in str(value or "").split(",") if s.strip()]
    return [] if names in ([], ["none"]) else names


# Arguments whose TrainingArguments value is worked out from the run rather than copied (keyed by arg name).
CONVERT = {
    "bf16": lambda ns, prec: prec["bf16"],  # what the device supports (pick_precision)
    "fp16": lambda ns, prec: prec["fp16"],
    "warmup_steps": lambda ns, prec: ns.warmup_steps if ns.warmup_steps > 0 else ns.warmup_ratio,  # <1: a fraction
    "eval_steps": lambda ns, prec: ns.eval_steps if ns.eval_strategy == "steps" else None,
    "report_to": lambda ns, prec: report_to(ns.report_to),
}


def schema_fields(ns: Namespace, prec: dict, stage: str) -> dict:
    """The TrainingArguments fields the schema maps (each Arg's `hf`), for the arguments of this stage."""
    return {a.hf: CONVERT[a.name](ns, prec) if a.name in CONVERT else getattr(ns, a.name)
            for a in ARGS if a.hf and a.applies(stage=stage)}


def training_arguments(ns: Namespace, prec: dict, stage: str):
    fields = schema_fields(ns, prec, stage)
    fields.update(  # what every run sets, whatever the arguments
        use_cpu=prec["use_cpu"], logging_first_step=True, save_strategy="steps",
        # several CPU processes (torchrun without GPUs) talk over gloo; on CUDA the Trainer picks nccl
        ddp_backend="gloo" if prec["use_cpu"] and int(os.environ.get("WORLD_SIZE", "1")) > 1 else None,
        remove_unused_columns=False, include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False if ns.finetuning_type != "full" else None,
        disable_tqdm=not sys.stderr.isatty(),
    )
    fields.update(best_model_args(ns))  # eval_loss picks the best checkpoint; keep it / stop early
    mod = stage_module(stage)
    if hasattr(mod, "trainer_fields"):  # a trl stage: its own fields on top of the shared arguments
        fields = mod.trainer_fields(ns, fields)
    extra = ns.extra_args or None
    if extra:  # the user's Trainer arguments go last: they were checked against this class (engine.train.extra)
        log.info("extra_args for the Trainer: %s", json.dumps(extra, default=str))
        fields.update(extra)
    return build(config_class(stage, ns), fields, extra)


def run(ns: Namespace) -> dict:
    """Train as configured. Returns the final metrics. Raises UserError/ConfigError for bad input."""
    output_dir, resume = prepare_output_dir(ns)
    stop = GracefulStop(on_stop=(lambda: _mark_aborted(output_dir)) if _is_main() else None)
    stop.install()
    if _is_main():
        _attach_running_log(output_dir)
        rundir.write_status(output_dir, "starting", started=time.time(), step=0, total_steps=None, error=None,
                            output_dir=str(output_dir))
        save_config(ns, output_dir / rundir.CONFIG)
        for note in compat_notes(ns):
            log.warning("LLaMA-Factory key %s", note)
        if resume:
            rundir.truncate_log(output_dir, rundir.checkpoint_step(resume))
            log.info("resuming from %s", resume)
    try:
        metrics = _run(ns, output_dir, resume, stop)
    except BaseException as e:
        # a stop signal may surface as another exception (a worker pool that was being waited on, for one)
        aborted = isinstance(e, KeyboardInterrupt) or stop.requested
        if _is_main():
            if aborted:
                _mark_aborted(output_dir)
            else:
                rundir.write_status(output_dir, "failed",
                                    error=str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}")
        if aborted and not isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        raise
    finally:
        stop.uninstall()
    return metrics


def _mark_aborted(output_dir: Path) -> None:
    """status.json says `aborted` and the phase the stop came in (once: the signal handler may write it first)."""
    st = rundir.read_status(output_dir) or {}
    if st.get("state") != "aborted" or st.get("pid") != os.getpid():
        rundir.write_status(output_dir, "aborted", error=f"stopped by the user while {st.get('state') or 'starting'}")


def _run(ns: Namespace, output_dir: Path, resume: str | None, stop: GracefulStop) -> dict:
    import torch
    from transformers import set_seed

    from ..data.loader import get_dataset
    from ..data.templates import resolve_template
    from ..models.loader import load_model, load_tokenizer
    from .methods import (PissaCheckpoints, apply_method, attach_loraplus, follow_residual, save_pissa_converted,
                          save_pissa_init)

    set_seed(ns.seed)
    prec = pick_precision(ns)
    log.info("device: %s; precision: %s", prec["device"]["name"],
             "bf16" if prec["bf16"] else "fp16" if prec["fp16"] else "fp32")
    torch.set_num_threads(max(1, torch.get_num_threads()))

    rundir.write_status(output_dir, "preprocessing") if _is_main() else None
    tokenizer = load_tokenizer(ns)
    template = resolve_template(ns, tokenizer)
    data = get_dataset(ns, tokenizer, template, ns.stage)
    if _is_main():
        atomic_write_json(output_dir / rundir.STATS, data.stats)

    # the arguments come first: with a ZeRO-3 DeepSpeed config they make from_pretrained load the weights
    # already partitioned across the GPUs instead of a full copy per process
    args = training_arguments(ns, prec, ns.stage)
    model = load_model(ns, trainable=True, reward_head=get_stage(ns.stage).reward_head)
    model = apply_method(model, ns)
    pissa_dir = None
    if _is_main():  # a resumed run keeps the initial adapter its first part saved
        kept = output_dir / "pissa_init"
        pissa_dir = str(kept) if resume and kept.is_dir() else save_pissa_init(model, output_dir)
    # PissaCheckpoints before RunLogCallback: a checkpoint is converted before it is marked complete
    callbacks = ([PissaCheckpoints(pissa_dir)] if pissa_dir else []) + [RunLogCallback(str(output_dir)), stop] \
        + early_stopping(ns)
    trainer = stage_module(ns.stage).build_trainer(ns, model, tokenizer, data, args, callbacks)
    attach_loraplus(trainer, ns)
    if ns.pissa_init:  # every rank: each one reloads the adapter on resume
        follow_residual(trainer)
    if args.world_size > 1 and _is_main():
        import torch.distributed as dist
        log.info("data parallel: %d processes, backend %s, global batch %d", args.world_size,
                 dist.get_backend() if dist.is_initialized() else "?",
                 args.world_size * ns.per_device_train_batch_size * ns.gradient_accumulation_steps)

    result = trainer.train(resume_from_checkpoint=resume)
    if _is_main():
        rundir.write_status(output_dir, "saving")
    with stop.deferred():  # an Abort while the result is written waits for it: never half an adapter
        trainer.save_model(str(output_dir))
        trainer.save_state()
        if pissa_dir and _is_main():
            save_pissa_converted(output_dir, pissa_dir)
    aborted = stop.requested
    metrics = dict(result.metrics)
    last_eval = [r for r in rundir.read_log(output_dir) if "eval_loss" in r]
    if last_eval and last_eval[-1]["step"] == trainer.state.global_step:  # evaluated at the last step already
        metrics.update({k: v for k, v in last_eval[-1].items() if k.startswith("eval_")})
    elif data.eval_dataset is not None and not aborted:
        rundir.write_status(output_dir, "evaluating") if _is_main() else None
        metrics.update(trainer.evaluate())
    if _is_main():
        with stop.deferred():
            tokenizer.save_pretrained(str(output_dir))
            metrics["total_steps"] = trainer.state.global_step
            metrics.update(best_metrics(trainer.state))
            metrics["template"] = template.name
            metrics["peak_rss_mb"] = round(peak_rss_bytes() / 2**20, 1)
            if torch.cuda.is_available():
                metrics["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            log.info("final metrics: %s", json.dumps(metrics, default=str))
            atomic_write_json(output_dir / rundir.RESULTS, metrics)
            if ns.plot_loss:
                from .plots import plot_loss
                plot_loss(output_dir)
        aborted = stop.requested
        rundir.write_status(output_dir, "aborted" if aborted else "finished", step=trainer.state.global_step,
                            total_steps=trainer.state.max_steps, ended=time.time(),
                            error="aborted by user; the last checkpoint is usable" if aborted else None)
    return metrics
