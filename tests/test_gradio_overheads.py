"""Gradio's per-event costs the app switches off (chatui/gradio_overheads.py), checked against
Gradio's own code: the analytics summary setting its queue reads, and the per-update
matplotlib imports (a failed import searches every sys.path entry each time)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import importlib.machinery, sys
searches = [0]
find_spec = importlib.machinery.PathFinder.find_spec.__func__
def counting(cls, name, path=None, target=None):
    if name == "matplotlib":
        searches[0] += 1
    return find_spec(cls, name, path, target)
importlib.machinery.PathFinder.find_spec = classmethod(counting)
import gradio as gr
from gradio.utils import MatplotlibBackendMananger
if sys.argv[1] == "trimmed":
    from chatui.gradio_overheads import trim_gradio_overheads
    trim_gradio_overheads()
with gr.Blocks() as demo:
    gr.Textbox()
demo.queue()
searches[0] = 0
for _ in range(100):  # what every streamed update of every event does
    with MatplotlibBackendMananger():
        pass
print(searches[0], demo._queue.ANAYLTICS_CACHE_FREQUENCY)
"""


def probe(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=ROOT, capture_output=True,
                         text=True, timeout=120,
                         env={"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                              "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    searches, frequency = out.stdout.split()[-2:]
    return int(searches), int(frequency)


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is not None,
                    reason="matplotlib installed: its import is cached, nothing to trim")
def test_streamed_updates_no_longer_search_for_matplotlib_and_analytics_are_rare():
    plain_searches, plain_frequency = probe("plain")
    assert plain_searches >= 200 and plain_frequency == 1      # Gradio's default behaviour
    searches, frequency = probe("trimmed")
    assert searches == 0 and frequency == 10_000
