"""tcmalloc under the processes that train, where the system has it (Linux).

A training step allocates and frees large tensors over and over (activations, gradients, casts, logits chunks);
glibc's malloc hands big blocks back to the kernel and page-faults them in again at the next step. tcmalloc keeps
them. Measured on bench/peer.py's workloads (2-core Xeon, THP on, one run each, alternating): LoRA 356.8 against
270.7 tokens/s, full 277.0 against 254.9, DPO 196.5 against 149.1, each at less peak memory (bench/README.md).

tcmalloc also returns freed memory to the system bit by bit (TCMALLOC_RELEASE_RATE, 1 by default), and a
training step faults it in again; at 0 it keeps what the peak step needed (the same peak RSS): LoRA 291.6 / 291.1
against 266.4 / 272.7 tokens/s, full 256.0 / 251.0 against 241.2 / 234.3, DPO 149.6 against 137.6 (alternating
runs; peak RSS 2.61 / 3.89 / 2.24 GiB against 2.59 / 3.89 / 2.20). A value the user set wins.

`tuneboard train` / `python -m engine train` re-executes itself once with LD_PRELOAD naming the library (the same
process id, arguments, folder and descriptors), so runs started from the web UI, the queue, torchrun and a terminal
all get it. Without the library nothing changes but a line in the log saying how to get it
(`make setup` installs Debian's libtcmalloc-minimal4 where it may). TUNEBOARD_MALLOC=system keeps glibc's.
"""
from __future__ import annotations

import ctypes.util
import os
import sys

MARK = "TUNEBOARD_MALLOC"        # the allocator this process runs with (set on the re-execution), or "system"
NAMES = ("tcmalloc_minimal", "tcmalloc")
KEEP = {"TCMALLOC_RELEASE_RATE": "0"}  # tcmalloc's settings for a training process; the user's own values win
PACKAGE = "libtcmalloc-minimal4"


def library() -> str | None:
    """The tcmalloc shared library the loader finds (its soname), or None."""
    if not sys.platform.startswith("linux"):
        return None
    for name in NAMES:
        found = ctypes.util.find_library(name)
        if found:
            return found
    return None


def preloaded_env(environ: dict) -> dict | None:
    """The environment to re-execute with, or None when this process should stay as it is: already re-executed,
    told to keep the system's allocator, or no tcmalloc on the system."""
    if environ.get(MARK):
        return None
    lib = library()
    if lib is None:
        return None
    preload = [p for p in environ.get("LD_PRELOAD", "").replace(" ", ":").split(":") if p]
    return {**KEEP, **environ, MARK: lib, "LD_PRELOAD": ":".join([lib, *preload])}


def reexec_preloaded() -> None:
    """Replace this process by the same command with tcmalloc preloaded (returns only where that does not apply).
    Call it before anything heavy is imported: nothing of this process survives."""
    env = preloaded_env(dict(os.environ))
    if env is None:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def describe() -> str:
    """For the run's log: the allocator and, without tcmalloc, how to get it."""
    mark = os.environ.get(MARK)
    if mark and mark != "system" and mark in os.environ.get("LD_PRELOAD", ""):
        return f"tcmalloc ({mark})"
    if mark == "system":
        return "the system's (TUNEBOARD_MALLOC=system)"
    return (f"the system's; training ran 9-32 % faster with tcmalloc on the benchmarks (apt-get install {PACKAGE}, "
            f"or `make setup` as root)")
