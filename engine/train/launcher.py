"""`tuneboard train`: validate, then either train here or relaunch under torchrun for several processes."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager

from .. import devices, procs
from ..config import load_config
from ..errors import ConfigError
from ..models.download import ensure_model
from ..utils import get_logger
from . import rundir

log = get_logger()


def needs_torchrun(ns) -> bool:
    return (ns.nproc_per_node > 1 or ns.nnodes > 1 or bool(ns.deepspeed) or bool(ns.fsdp)) \
        and "LOCAL_RANK" not in os.environ


def check_deepspeed(ns) -> None:
    """DeepSpeed on a machine without CUDA would JIT-compile its CPU ops for minutes and then fail: say so first."""
    if not ns.deepspeed:
        return
    import torch
    if not torch.cuda.is_available():
        raise ConfigError("deepspeed: DeepSpeed needs CUDA GPUs and this machine has none; leave deepspeed empty "
                          "(several CPU processes train data-parallel with nproc_per_node=2).", "deepspeed")


def torchrun_command(ns, path: str | None, overrides: list[str]) -> list[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={ns.nnodes}", f"--node_rank={ns.node_rank}",
           f"--nproc_per_node={ns.nproc_per_node}", f"--master_addr={ns.master_addr}",
           f"--master_port={ns.master_port}", "-m", "engine", "train"]
    # pin the output dir so every process (and a re-run) writes to the same place
    return cmd + ([path] if path else []) + list(overrides) + [f"output_dir={ns.output_dir}"]


def run_cli(opts) -> int:
    """`tuneboard train [recipe.yaml] [key=value ...]` (opts: parsed by engine.cli)."""
    with _stop_is_an_interrupt():
        return _run_cli(opts.recipe, opts.overrides)


@contextmanager
def _stop_is_an_interrupt():
    """SIGTERM during start-up (before training installs its graceful stop) ends like Ctrl-C: exit code 130."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_cli(path: str | None, overrides: list[str]) -> int:
    ns = load_config(path, overrides, "train")
    devices.apply(ns.values)  # before anything starts CUDA (check_deepspeed does)
    check_deepspeed(ns)
    if "LOCAL_RANK" in os.environ:  # a torchrun worker: the launcher holds the lock and fetched the model
        procs.die_with_parent(os.getppid())  # it must not train on without its launcher
        return _train(ns)
    # before anything else: a second `tuneboard train` on this output_dir is refused here, not 30 steps later
    with rundir.lock(ns.output_dir):
        ensure_model(ns.model_name_or_path, ns.hub)  # once, before any worker starts: a registry model not here
        if needs_torchrun(ns):
            cmd = torchrun_command(ns, path, overrides)
            log.info("launching %d process(es) per node with torchrun: %s", ns.nproc_per_node, " ".join(cmd))
            env = dict(os.environ)
            if ns.finetuning_type != "full":
                env.setdefault("TORCH_NCCL_ASYNC_ERROR_HANDLING", "1")
            return _run_torchrun(cmd, env)
        return _train(ns)


def _train(ns) -> int:
    from .workflow import run
    try:
        with procs.children_die_with_me():  # datasets.map and DataLoader workers must not outlive a killed trainer
            run(ns)
    except KeyboardInterrupt:
        log.warning("training stopped by the user")
        return 130
    return 0


def _run_torchrun(cmd: list[str], env: dict) -> int:
    """torchrun and, through it, its workers end with this process, even on `kill -9` of it; a stop signal sent
    to this process alone is passed on (the workers save a checkpoint and stop), and then it exits 130."""
    child = subprocess.Popen(cmd, env=env, preexec_fn=procs.preexec_die_with_parent())
    stopped = []

    def forward(signum, frame):
        stopped.append(signum)
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass
    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        rc = child.wait()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    return 130 if stopped else rc
