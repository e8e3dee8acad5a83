"""TuneBoard web UI (gradio only; everything else lives in engine/)."""
