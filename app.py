"""Entry point: `python app.py` (also what a Hugging Face Space runs)."""

from __future__ import annotations

import os
import sys

# Offline-friendly defaults: no telemetry calls from a machine that may have no network.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from chatui.app_factory import build_app, load_or_exit  # noqa: E402


def main() -> None:
    settings = load_or_exit()
    demo = build_app(settings)
    demo.launch(server_name=settings.server.host, server_port=settings.server.port,
                max_threads=settings.server.max_threads, show_error=True)


if __name__ == "__main__":
    sys.exit(main())
