"""`tuneboard env`: versions and devices, for bug reports."""
from __future__ import annotations

import importlib.metadata as md
import platform

from . import __version__
from .utils import device_info

PACKAGES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "deepspeed", "bitsandbytes", "gradio",
            "modelscope", "gguf", "fastapi", "uvicorn")


def collect() -> dict:
    info = {"tuneboard": __version__, "python": platform.python_version(), "platform": platform.platform()}
    for p in PACKAGES:
        try:
            info[p] = md.version(p)
        except md.PackageNotFoundError:
            info[p] = "not installed"
    info.update({f"device.{k}": v for k, v in device_info().items()})
    return info


def print_env() -> None:
    for k, v in collect().items():
        print(f"- {k}: {v}")
