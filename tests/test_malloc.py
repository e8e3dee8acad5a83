"""engine.malloc: a command line that trains re-executes itself once with tcmalloc preloaded, where the system has it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import malloc

ROOT = Path(__file__).resolve().parent.parent


def test_the_environment_it_re_executes_with(monkeypatch):
    monkeypatch.setattr(malloc, "library", lambda: "libtcmalloc_minimal.so.4")
    env = malloc.preloaded_env({"PATH": "/bin", "LD_PRELOAD": "libmine.so"})
    assert env["LD_PRELOAD"] == "libtcmalloc_minimal.so.4:libmine.so"  # the user's preload stays, after it
    assert env[malloc.MARK] == "libtcmalloc_minimal.so.4" and env["PATH"] == "/bin"
    assert env["TCMALLOC_RELEASE_RATE"] == "0"  # freed memory kept for the next step
    mine = malloc.preloaded_env({"TCMALLOC_RELEASE_RATE": "5"})
    assert mine["TCMALLOC_RELEASE_RATE"] == "5"  # the user's setting wins
    assert malloc.preloaded_env(env) is None  # once only
    assert malloc.preloaded_env({malloc.MARK: "system"}) is None  # the user keeps glibc's
    monkeypatch.setattr(malloc, "library", lambda: None)
    assert malloc.preloaded_env({"PATH": "/bin"}) is None  # nothing to preload: the process stays as it is
    monkeypatch.delenv(malloc.MARK, raising=False)
    assert "apt-get install libtcmalloc-minimal4" in malloc.describe()  # the run's log says how to get it


@pytest.mark.skipif(malloc.library() is None, reason="no tcmalloc on this system (make setup installs it as root)")
def test_the_process_is_replaced_by_itself_with_tcmalloc_loaded():
    code = ("import os, sys; from engine import malloc; "
            "print('before', os.getpid(), sys.argv[1:], flush=True) if not os.environ.get(malloc.MARK) else None; "
            "malloc.reexec_preloaded(); "
            "print('after', os.getpid(), sys.argv[1:], 'tcmalloc' in open('/proc/self/maps').read(), malloc.describe())")
    env = {k: v for k, v in os.environ.items() if k != malloc.MARK}
    r = subprocess.run([sys.executable, "-c", code, "word", "x=1"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    before, after = r.stdout.strip().splitlines()
    pid = before.split()[1]
    assert before == f"before {pid} ['word', 'x=1']"
    assert after.startswith(f"after {pid} ['word', 'x=1'] True tcmalloc (")  # same process, arguments, library
