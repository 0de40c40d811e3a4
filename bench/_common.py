"""Shared by the bench scripts (run as `python bench/NAME.py`): the repo on sys.path and the
offline defaults (these machines reach no network: never phone home, never ask the Hub)."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

for _name, _value in {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                      "HF_DATASETS_OFFLINE": "1", "NO_PROXY": "127.0.0.1,localhost",
                      "no_proxy": "127.0.0.1,localhost"}.items():
    os.environ.setdefault(_name, _value)


class TimedList(list):
    """A gradio_client job's outputs, with the moment each became visible to user code."""

    def __init__(self):
        super().__init__()
        self.times: list[float] = []

    def append(self, item):
        import time

        self.times.append(time.perf_counter())
        super().append(item)


def timed_client(url: str):
    """A gradio_client Client whose jobs timestamp their outputs (no polling of our own)."""
    from gradio_client import Client

    client = Client(url, verbose=False, download_files=False)
    orig = client.new_helper

    def new_helper(*args, **kwargs):
        helper = orig(*args, **kwargs)
        helper.job.outputs = TimedList()
        return helper

    client.new_helper = new_helper
    return client
