"""Entry point: `python app.py` (also what a Hugging Face Space runs)."""

from __future__ import annotations

import os

# Offline-friendly defaults: no telemetry calls from a machine that may have no network.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from chatui.app_factory import build_app, load_or_exit  # noqa: E402
from chatui.server import serve  # noqa: E402


def main() -> None:
    settings = load_or_exit()
    serve(build_app(settings), settings)


if __name__ == "__main__":
    main()
