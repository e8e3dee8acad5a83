"""Launch the TuneBoard web UI at http://127.0.0.1:7860: the same as `tuneboard webui [recipe.yaml] [key=value ...]`
(`tuneboard webui --help` lists --host/--port/--share/--lang/--auth)."""
import sys

if __name__ == "__main__":
    from tuneboard.cli import main
    sys.exit(main(["webui", *sys.argv[1:]]))
