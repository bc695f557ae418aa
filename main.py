"""Run Tyk Inspector: `python main.py [serve|send] ...` (same as the `tyk-inspector` command)."""

from app.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
