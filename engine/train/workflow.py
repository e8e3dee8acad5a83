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
from contextlib import contextmanager
from pathlib import Path

from .. import malloc, procs, usage
from ..args import ARGS, Namespace
from ..config import compat_notes, save_config
from ..data.loader import get_dataset
from ..data.templates import resolve_template
from ..errors import ConfigError, UserError
from ..insight.estimate import count_steps, needs_checkpointing
from ..models.loader import load_model, load_tokenizer
from ..precision import choose, flags
from ..utils import atomic_write_json, device_info, get_logger, peak_rss_bytes
from . import rundir
from .best import (
    best_metrics,
    best_model_args,
    count_final,
    early_stopping,
    eval_steps,
    planned,
    planned_eval_steps,
)
from .callbacks import AfterTheLoop, BeginCallback, GracefulStop, RunLogCallback
from .extra import build
from .fsdp import enable_on_cpu
from .plots import plot_loss
from .stages import config_class, get_stage, stage_module

log = get_logger()


class _QuietFileHandler(logging.FileHandler):
    """running.log on a full disk: drop the line rather than print a traceback for every log call."""

    def handleError(self, record):
        pass


_MIRRORED = ("tuneboard", "transformers", "peft", "trl")


@contextmanager
def _running_log(output_dir: Path):
    """Mirror logs into running.log for the block, unless stdout already goes there (the web UI redirects it)."""
    path = output_dir / rundir.RUNNING_LOG
    try:
        if path.exists() and os.path.samestat(os.fstat(sys.stdout.fileno()), os.stat(path)):
            yield
            return
    except (OSError, ValueError):
        pass
    handler = _QuietFileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s", "%H:%M:%S"))
    for name in _MIRRORED:
        logging.getLogger(name).addHandler(handler)
    try:
        yield
    finally:  # a later run in this process (a test, a sweep) must not write into this run's log
        for name in _MIRRORED:
            logging.getLogger(name).removeHandler(handler)
        handler.close()


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _launched_worker() -> bool:
    """A process torchrun started for `tuneboard train`: the launcher holds the run folder's lock."""
    return "LOCAL_RANK" in os.environ


_LAST = ("true", "last", "latest", "yes")


def resolve_resume(ns: Namespace, output_dir: Path) -> str | None:
    return pick_checkpoint(ns, output_dir)[0]


def pick_checkpoint(ns: Namespace, output_dir: Path) -> tuple[str | None, list[tuple[Path, str]]]:
    """(the checkpoint to resume from, damaged newer ones passed over and what is wrong with each). Each is
    verified first (its files read whole), so a resume never starts on one that a kill or a full disk cut short."""
    r = ns.resume_from_checkpoint
    if not r:
        return None, []
    if r.lower() in _LAST:
        if not rundir.checkpoints(output_dir):
            raise ConfigError(f"resume_from_checkpoint: {output_dir} has no complete checkpoint to resume from.",
                              "resume_from_checkpoint")
        _refuse_if_done(ns, rundir.last_checkpoint(output_dir))  # the end already: say what to raise first
        ckpt, skipped = rundir.last_good_checkpoint(output_dir)
        if ckpt is None:
            bad = "; ".join(f"{c.name}: {why}" for c, why in skipped)
            raise ConfigError(f"resume_from_checkpoint: no checkpoint in {output_dir} can be resumed from ({bad}). "
                              f"Start the run again with overwrite_output_dir=true, or in a new output_dir.",
                              "resume_from_checkpoint")
        _refuse_if_done(ns, ckpt)
        return str(ckpt), skipped
    p = Path(r)
    if not p.is_dir() or not (p / "trainer_state.json").exists():
        raise ConfigError(f"resume_from_checkpoint: {r} is not a checkpoint folder (no trainer_state.json). "
                          f"Complete checkpoints here: {[c.name for c in rundir.checkpoints(output_dir)] or 'none'}.",
                          "resume_from_checkpoint")
    _refuse_if_done(ns, p)
    problem = rundir.checkpoint_problem(p)
    if problem:
        good = next((c for c in reversed(rundir.checkpoints(p.parent)) if c != p and
                     rundir.checkpoint_step(c) < rundir.checkpoint_step(p) and rundir.checkpoint_problem(c) is None),
                    None)
        alt = (f" The newest whole checkpoint before it is {good.name}: resume_from_checkpoint={good}."
               if good else " No earlier checkpoint there reads whole: start the run again.")
        raise ConfigError(f"resume_from_checkpoint: {p} is damaged: {problem}, so training cannot resume from it "
                          f"(a run killed while saving it, or a full disk?).{alt} Delete or move {p.name} so that "
                          f"resume_from_checkpoint=true does not pick it either.", "resume_from_checkpoint")
    return str(p), []


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
    """Where this run writes and whether it resumes, or ConfigError; nothing is written here."""
    out, resume, _ = _plan(ns)
    return out, resume


def _plan(ns: Namespace) -> tuple[Path, str | None, list[tuple[Path, str]]]:
    out = Path(ns.output_dir)
    pid = rundir.active_pid(out) if _is_main() else None
    if pid:
        raise ConfigError(f"output_dir: a run is still going on in {out} (process {pid}); abort it first or "
                          f"choose another output_dir.", "output_dir")
    resume, damaged = pick_checkpoint(ns, out)
    if not resume and _is_main():
        rundir.refuse_to_write(out, ns.overwrite_output_dir)
    return out, resume, damaged


def pick_precision(ns: Namespace) -> dict:
    """The compute type this run trains in (engine.precision), written back into bf16 / fp16 so the Trainer, the
    model loader and the logs all read the one choice."""
    dev = device_info()
    c = choose(ns, dev)
    if c["precision"] == "fp32" and c["asked"] not in ("auto", "fp32"):
        log.warning("%s", c["why"])
    ns.values.update(flags(c["precision"]))
    return {**flags(c["precision"]), "use_cpu": dev["device"] == "cpu", "device": dev, "why": c["why"]}


def report_to(value: str | None) -> list[str]:
    """report_to as the Trainer takes it: "tensorboard,wandb" -> both; none -> no tracker."""
    names = [s.strip() for s in str(value or "").split(",") if s.strip()]
    return [] if names in ([], ["none"]) else names


# Arguments whose TrainingArguments value is worked out from the run rather than copied (keyed by arg name).
CONVERT = {
    "bf16": lambda ns, prec: prec["bf16"],  # what the device supports (pick_precision)
    "fp16": lambda ns, prec: prec["fp16"],
    "warmup_steps": lambda ns, prec: ns.warmup_steps if ns.warmup_steps > 0 else ns.warmup_ratio,  # <1: a fraction
    "eval_steps": lambda ns, prec: eval_steps(ns) if ns.eval_strategy == "steps" else None,
    "report_to": lambda ns, prec: report_to(ns.report_to),
    "fsdp": lambda ns, prec: bool(ns.fsdp),  # its settings go in fsdp_config (fsdp_config below)
}


def fsdp_config(ns: Namespace) -> dict:
    """transformers' fsdp_config of an `fsdp` mode: FSDP2, one shard unit per decoder layer (the model's
    _no_split_modules), the whole state dict gathered on save so checkpoints load anywhere. gradient_checkpointing
    stays with engine.train.methods, as for every other mode."""
    return {"version": 2, "reshard_after_forward": ns.fsdp != "shard_grad_op", "cpu_offload": ns.fsdp == "offload",
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "state_dict_type": "FULL_STATE_DICT"}


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
    if ns.fsdp:
        fields["fsdp_config"] = fsdp_config(ns)
    fields.update(best_model_args(ns))  # eval_loss picks the best checkpoint; keep it / stop early
    mod = stage_module(stage)
    if hasattr(mod, "trainer_fields"):  # a trl stage: its own fields on top of the shared arguments
        fields = mod.trainer_fields(ns, fields)
    extra = ns.extra_args or None
    if extra:  # the user's Trainer arguments go last: they were checked against this class (engine.train.extra)
        log.info("extra_args for the Trainer: %s", json.dumps(extra, default=str))
        fields.update(extra)
    return build(config_class(stage, ns), fields, extra)


@contextmanager
def _only_writer(out: Path):
    if _launched_worker():
        yield
    else:
        with rundir.lock(out):
            yield


def run(ns: Namespace) -> dict:
    """Train as configured. Returns the final metrics. Raises UserError/ConfigError for bad input, and
    KeyboardInterrupt once a stopped run has saved its checkpoint and recorded that it was aborted."""
    with _only_writer(Path(ns.output_dir)):
        return _attempt(ns)


def _attempt(ns: Namespace) -> dict:
    main = _is_main()
    note = rundir.recover(ns.output_dir) if main else None
    output_dir, resume, damaged = _plan(ns)
    if not main:
        return _train(ns, output_dir, resume, None)
    replacing = bool(ns.overwrite_output_dir and not resume and rundir.holds_run(output_dir))
    attempt = rundir.Attempt(output_dir, resume, replacing, [c for c, _ in damaged])
    with _running_log(output_dir):
        if note:
            log.warning("%s", note)
        for c, why in damaged:
            log.warning("%s is damaged (%s): resuming from %s instead; it is renamed %s.damaged when training "
                        "starts", c, why, Path(resume).name, c.name)
        return _train(ns, output_dir, resume, attempt)


def _begin_attempt(ns: Namespace, attempt: rundir.Attempt) -> None:
    attempt.start()
    # a run already in the folder keeps its own config until this one starts training
    attempt.write(lambda: save_config(ns, attempt.out / rundir.CONFIG))
    for line in compat_notes(ns):
        log.warning("LLaMA-Factory key %s", line)
    if attempt.resume:
        log.info("resuming from %s", attempt.resume)
    if attempt.replacing:
        log.warning("overwrite_output_dir: the run in %s is set aside when training starts and removed once this "
                    "run has its first checkpoint", attempt.out)


def _train(ns: Namespace, output_dir: Path, resume: str | None, attempt: rundir.Attempt | None) -> dict:
    """_run with the stop signals handled and the attempt's end recorded, however it ends (rank 0: attempt)."""
    main = attempt is not None
    stop = GracefulStop(on_stop=(lambda: _end(attempt, "aborted", None)) if main else None, output_dir=output_dir)
    stop.install()  # before the attempt writes anything: a stop from here on is recorded
    recorder = usage.Recorder(output_dir, publish=False).start() if main else None  # the peaks, for the results
    try:
        if main:
            attempt.deferred.append(recorder.publish)  # usage.json appears when training starts
            _begin_attempt(ns, attempt)
        metrics = _run(ns, output_dir, resume, stop, attempt, recorder)
    except BaseException as e:
        # a stop signal may surface as another exception (a worker pool that was being waited on, for one)
        aborted = isinstance(e, KeyboardInterrupt) or stop.requested
        full = not aborted and rundir.is_disk_full(e, output_dir)
        message = None
        if main:
            if full:
                dropped = rundir.drop_partial_checkpoints(output_dir)
                message = rundir.disk_full_message(output_dir, attempt.checkpoint_bytes, dropped)
            _end(attempt, "aborted" if aborted else "failed",
                 message or (str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"))
        if aborted and not isinstance(e, KeyboardInterrupt):
            raise KeyboardInterrupt from None
        if full:
            raise UserError(message or f"disk full: no space left for {output_dir}.") from None
        raise
    finally:
        stop.uninstall()
        if recorder is not None:
            recorder.stop()
    if stop.requested:
        raise KeyboardInterrupt  # the checkpoint is saved and status.json says aborted: the CLI exits 130
    return metrics


def _end(attempt: rundir.Attempt | None, state: str, error: str | None) -> None:
    """Record how an attempt ended (once: a stop signal's handler may get there first)."""
    if attempt is None:
        return
    if state == "aborted" and error is None:
        st = rundir.read_status(attempt.out) or {}
        phase = st.get("state") if st.get("pid") == os.getpid() else None
        error = f"stopped by the user while {phase or 'starting'}"
    note = attempt.end(state, error)
    if note:
        log.warning("%s", note)


def _checkpoint_bytes(model, ns: Namespace) -> int:
    """About what one checkpoint takes: the weights it saves, AdamW's two moments per trained weight, the tokenizer."""
    params = list(model.parameters())
    trained = sum(p.numel() for p in params if p.requires_grad)
    saved = sum(p.numel() * p.element_size() for p in params if ns.finetuning_type != "lora" or p.requires_grad)
    return saved + 8 * trained + (8 << 20)


def _checkpoint_if_needed(ns: Namespace, stats: dict) -> None:
    """Activation checkpointing costs a recomputed forward: on only where the memory estimate says the run would
    not fit without it, and only when the recipe left gradient_checkpointing alone."""
    if ns.gradient_checkpointing or "gradient_checkpointing" in ns.explicit:
        return
    longest = min(int(stats.get("max_len") or ns.cutoff_len), ns.cutoff_len)
    try:
        need = needs_checkpointing(ns, longest)
    except Exception as e:  # an estimate that cannot be made must not stop the run
        log.info("memory estimate unavailable (%s): gradient_checkpointing stays off", e)
        return
    if need:
        ns.gradient_checkpointing = True
        log.warning("gradient_checkpointing: on, since the estimate (%.2f GB) exceeds the memory free now (%.2f GB); "
                    "with it: %.2f GB. Set gradient_checkpointing=false to keep it off.",
                    need["without"] / 2**30, need["budget"] / 2**30, need["with"] / 2**30)


def _plan_evaluation(ns: Namespace, data) -> bool:
    """eval_steps left empty: how often this run evaluates (engine.train.best), said in the log. True when planned."""
    if not planned(ns) or data.eval_dataset is None:
        return False
    rows, eval_rows = len(data.train_dataset), len(data.eval_dataset)
    steps = count_steps(rows, ns)
    every = planned_eval_steps(ns, rows, eval_rows, steps["total_steps"], steps["steps_per_epoch"])
    ns.eval_steps = every
    log.info("evaluation: every %d steps of %d, the last one after training (%d eval rows, %d train rows; "
             "set eval_steps to choose)", every, steps["total_steps"], eval_rows, rows)
    return True


def _run(ns: Namespace, output_dir: Path, resume: str | None, stop: GracefulStop,
         attempt: rundir.Attempt | None, recorder: usage.Recorder | None) -> dict:
    import torch
    from transformers import set_seed

    from .methods import (
        PISSA_INIT_DIR,
        PissaCheckpoints,
        apply_method,
        attach_loraplus,
        follow_residual,
        pissa_init_saver,
        save_pissa_converted,
        uses_pissa,
    )

    main = attempt is not None
    set_seed(ns.seed)
    prec = pick_precision(ns)
    log.info("device: %s; precision: %s (%s)", prec["device"]["name"],
             "bf16" if prec["bf16"] else "fp16" if prec["fp16"] else "fp32", prec["why"])
    log.info("memory allocator: %s", malloc.describe())

    rundir.write_status(output_dir, "preprocessing") if main else None
    tokenizer = load_tokenizer(ns)
    template = resolve_template(ns, tokenizer)
    data = get_dataset(ns, tokenizer, template, ns.stage)

    _checkpoint_if_needed(ns, data.stats)
    eval_planned = _plan_evaluation(ns, data)
    # the arguments come first: with a ZeRO-3 DeepSpeed config they make from_pretrained load the weights
    # already partitioned across the GPUs instead of a full copy per process
    args = training_arguments(ns, prec, ns.stage)
    model = load_model(ns, trainable=True, reward_head=get_stage(ns.stage).reward_head)
    model = apply_method(model, ns)
    pissa_dir = None
    if main:
        # what the run folder gets once training starts (rundir.Attempt.begin): nothing of a run already there
        # changes before the data, the model and the checkpoint have loaded
        attempt.write(lambda: atomic_write_json(output_dir / rundir.STATS, data.stats))
        attempt.checkpoint_bytes = _checkpoint_bytes(model, ns)
        kept = output_dir / PISSA_INIT_DIR
        if resume and kept.is_dir():  # a resumed run keeps the initial adapter its first part saved
            pissa_dir = str(kept)
        elif uses_pissa(model):
            pissa_dir = str(kept)
            attempt.deferred.append(pissa_init_saver(model, output_dir))  # as initialised, written at the start
    # PissaCheckpoints before RunLogCallback: a checkpoint is converted before it is marked complete
    after = AfterTheLoop(evaluate=eval_planned, save=_defers_last_save(args))
    callbacks = ([PissaCheckpoints(pissa_dir)] if pissa_dir else []) \
        + [RunLogCallback(str(output_dir), stop=stop, on_checkpoint=_saved(attempt))] + early_stopping(ns) \
        + ([after] if after.flags else [])
    trainer = stage_module(ns.stage).build_trainer(ns, model, tokenizer, data, args, callbacks)
    # first of all callbacks: a stop signal is graceful before the run folder changes hands (Begin), and the
    # folder is ready before a tracker (tensorboard) opens files in it
    trainer.callback_handler.callbacks[0:0] = [stop] + ([BeginCallback(attempt.begin)] if main else [])
    if ns.fsdp:
        enable_on_cpu(trainer)
    attach_loraplus(trainer, ns)
    if ns.pissa_init:  # every rank: each one reloads the adapter on resume
        follow_residual(trainer)
    if args.world_size > 1 and main:
        import torch.distributed as dist
        log.info("data parallel: %d processes, backend %s, global batch %d%s", args.world_size,
                 dist.get_backend() if dist.is_initialized() else "?",
                 args.world_size * ns.per_device_train_batch_size * ns.gradient_accumulation_steps,
                 f"; FSDP2 {ns.fsdp}" if ns.fsdp else "")

    with procs.shielded_children():  # data workers outlive a group-wide stop signal until the checkpoint is saved
        result = trainer.train(resume_from_checkpoint=resume)
        if ns.fsdp and main:  # what fully_shard made of the weights: each process holds a shard (a DTensor)
            from torch.distributed.tensor import DTensor
            ps = list(trainer.model_wrapped.parameters())
            log.info("FSDP2: %d of %d parameter tensors sharded over %d processes",
                     sum(isinstance(p, DTensor) for p in ps), len(ps), args.world_size)
        if main:
            rundir.write_status(output_dir, rundir.ABORTING if stop.requested else "saving")
        with stop.saving():  # an Abort while the result is written waits for it: never half an adapter
            if _defers_last_save(args):
                save_last_checkpoint(trainer, output_dir)
            trainer.save_model(str(output_dir))
            trainer.save_state()
            if pissa_dir and main:
                save_pissa_converted(output_dir, pissa_dir)
    if main:
        attempt.saved()
    aborted = stop.requested
    metrics = dict(result.metrics)
    if resume and "train_loss" in metrics:
        metrics["train_loss"] = _whole_run_loss(resume, metrics["train_loss"], trainer.state.global_step)
    last_eval = [r for r in rundir.read_log(output_dir) if "eval_loss" in r]
    if last_eval and last_eval[-1]["step"] == trainer.state.global_step:  # evaluated at the last step already
        metrics.update({k: v for k, v in last_eval[-1].items() if k.startswith("eval_")})
    elif data.eval_dataset is not None and not aborted:
        rundir.write_status(output_dir, "evaluating") if main else None
        metrics.update(trainer.evaluate())
        if eval_planned:
            last = rundir.checkpoint_dir(output_dir, trainer.state.global_step)
            count_final(trainer.state, metrics.get("eval_loss"), str(last) if last.is_dir() else None)
    if main:
        with stop.saving():
            tokenizer.save_pretrained(str(output_dir))
            metrics["total_steps"] = trainer.state.global_step
            metrics.update(best_metrics(trainer.state))
            metrics["template"] = template.name
            metrics["peak_rss_mb"] = round(peak_rss_bytes() / 2**20, 1)
            if torch.cuda.is_available():
                metrics["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            if recorder is not None:  # the whole process tree (data workers too), sampled while it trained
                metrics.update(recorder.stop())
            log.info("final metrics: %s", json.dumps(metrics, default=str))
            atomic_write_json(output_dir / rundir.RESULTS, metrics)
            if ns.plot_loss:
                plot_loss(output_dir)
            rundir.share_results(*rundir.own_files(output_dir))
        aborted = stop.requested
        rundir.write_status(output_dir, "aborted" if aborted else "finished", step=trainer.state.global_step,
                            total_steps=trainer.state.max_steps, ended=time.time(), stop_by=None,
                            error="aborted by user; the last checkpoint is usable" if aborted else None)
    return metrics


def _defers_last_save(args) -> bool:
    """Whether the last step's checkpoint is written after the loop (callbacks.AfterTheLoop)."""
    return str(getattr(args.save_strategy, "value", args.save_strategy)) in ("steps", "epoch") \
        and not args.load_best_model_at_end


def save_last_checkpoint(trainer, output_dir: Path) -> None:
    """The checkpoint of the step training ended on, as the Trainer writes one (every process takes part, as in
    its loop), then marked complete by the callbacks; nothing when that step has one already (a graceful stop
    saved it)."""
    if rundir.checkpoint_dir(output_dir, trainer.state.global_step).is_dir():
        return
    trainer._save_checkpoint(trainer.model_wrapped, trial=None)
    trainer.control = trainer.callback_handler.on_save(trainer.args, trainer.state, trainer.control)


def _saved(attempt: rundir.Attempt | None):
    if attempt is None:
        return None

    def on_checkpoint():
        if attempt.saved():
            log.info("the run this one replaces is removed: this run has its first checkpoint")
    return on_checkpoint


def _whole_run_loss(resume: str, session_loss: float, global_step: int) -> float:
    """The Trainer's train_loss covers only the steps since the resume; average the whole run instead, taking
    the steps before it from the losses the checkpoint logged."""
    start = rundir.checkpoint_step(resume)
    try:
        history = json.loads((Path(resume) / "trainer_state.json").read_text(encoding="utf-8"))["log_history"]
    except (OSError, ValueError, KeyError, TypeError):
        return session_loss
    before = rundir.mean_train_loss(history if isinstance(history, list) else [], start)
    if before is None or global_step <= start:
        return session_loss
    return (before[0] + session_loss * (global_step - start)) / global_step
