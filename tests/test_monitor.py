"""The run panel's live monitor (engine.usage, webui.monitor): the CPU and memory of a run's whole process tree
against what the kernel says, the peaks the trainer keeps in its results, learning-rate and grad-norm curves."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path


from engine import runs, usage
from engine.train import rundir
from helpers import wait_for
from webui import monitor

ROOT = Path(__file__).resolve().parent.parent

TREE = textwrap.dedent("""
    import subprocess, sys, time
    block = bytearray(b"\\x01") * (120 << 20)   # touched: resident, not just reserved
    child = subprocess.Popen([sys.executable, "-c", "import time\\nb = bytearray(b'\\\\x01') * (60 << 20)\\n"
                              "print('child ready', flush=True)\\ntime.sleep(600)"])
    print("root ready", flush=True)
    time.sleep(600)
""")


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_monitor_reads_the_whole_tree_as_the_kernel_does(tmp_path, saves):
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    run = runs.launch("train", [sys.executable, str(script)], tmp_path / "out", saves=saves)
    wait_for(lambda: "child ready" in run.tail() and "root ready" in run.tail(), 60, "the tree to allocate")
    first = usage.sample(run)
    real = sum(vm_rss_mb(p.pid) for p in run.processes())
    assert first["processes"] == 2
    assert 180 <= first["rss_mb"] and abs(first["rss_mb"] - real) <= 0.05 * real, (first, real)
    assert first["cpu_percent"] is not None and first["cpu_percent"] >= 0
    # the second reading is the CPU used between the two: the tree sleeps, so it is near zero
    wait_for(lambda: usage.sample(run)["cpu_percent"] < 20, 10, "an idle tree's CPU to read near zero")
    html = monitor.usage_html(usage.sample(run), "en")
    shown = float(html.split("data-rss-mb='")[1].split("'")[0])
    assert abs(shown - real) <= 0.05 * real and "(2 processes)" in html
    assert usage.sample(run)["gpus"] == []  # no nvidia-smi here


RECORDS = textwrap.dedent("""
    # a process with no children, so its tree is itself: nothing else comes or goes while it is watched
    import json, os, sys, time
    from pathlib import Path
    from engine import usage
    out = Path(sys.argv[1])
    base = usage.measure(usage.tree(os.getpid()))["rss_mb"]
    rec = usage.Recorder(out, every=0.05).start()
    block = bytearray(b"\\x01") * (80 << 20)
    deadline = time.time() + 60
    while usage.read_peaks(out).get("peak_tree_rss_mb", 0) < base + 75 and time.time() < deadline:
        time.sleep(0.05)
    del block
    print(json.dumps({"base": base, "peaks": rec.stop()}))
""")


def test_the_trainer_records_its_peaks_and_the_panel_draws_lr_and_grad_norm(tmp_path):
    r = subprocess.run([sys.executable, "-c", RECORDS, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    peaks = got["peaks"]
    assert peaks["peak_tree_rss_mb"] >= got["base"] + 75 and "peak_gpu_reserved_mb" not in peaks  # no CUDA here
    assert usage.read_peaks(tmp_path) == peaks and (tmp_path / rundir.USAGE).is_file()
    recs = [{"step": 1, "loss": 2.0, "learning_rate": 1e-4, "grad_norm": 3.0},
            {"step": 2, "loss": 1.5, "learning_rate": 5e-5, "grad_norm": 1.0}, {"step": 2, "eval_loss": 1.7}]
    assert monitor.curve_series(recs) == {"learning_rate": ([1, 2], [1e-4, 5e-5]), "grad_norm": ([1, 2], [3.0, 1.0])}
    fig = monitor.curves_figure(recs, "zh")
    lr_ax, gn_ax = fig.axes
    assert list(lr_ax.lines[0].get_ydata()) == [1e-4, 5e-5] and list(gn_ax.lines[0].get_ydata()) == [3.0, 1.0]
    assert lr_ax.get_ylabel() == "learning rate"
    assert monitor.curves_figure([{"step": 1, "eval_loss": 2.0}]) is None
