"""Launch the TuneBoard web UI at http://127.0.0.1:7860 (see webui/launch.py for --host/--port/--share/--lang)."""
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

if __name__ == "__main__":
    from webui.launch import main
    sys.exit(main())
