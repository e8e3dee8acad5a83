"""TuneBoard engine: everything that is not UI. Imports without gradio (and without torch at top level)."""
__version__ = "0.1.0"

from . import utils as _utils  # noqa: E402,F401  (holds back a library's import-time noise: see utils.BNB_KERNELS)
