"""TuneBoard engine: everything that is not UI. Imports without gradio (and without torch at top level)."""
__version__ = "0.1.0"
