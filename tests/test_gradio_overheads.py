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


IDLE_PROBE = """
import asyncio, sys, time
import gradio as gr
from gradio_client import Client
from chatui import gradio_overheads as go
mode = sys.argv[1]
if mode == "trimmed":
    go.trim_gradio_overheads()
from gradio import queueing
sleeps = [0]
real_sleep = queueing.asyncio.sleep
async def counting(delay, result=None):
    if delay == 0.001:
        sleeps[0] += 1
    return await real_sleep(delay, result)
queueing.asyncio.sleep = counting
with gr.Blocks() as demo:
    box = gr.Textbox()
    box.submit(lambda s: s[::-1], box, box, api_name="rev")
demo.queue().launch(prevent_thread_lock=True, server_port=int(sys.argv[2]))
client = Client(f"http://127.0.0.1:{sys.argv[2]}/", verbose=False)
assert client.predict("abc", api_name="/rev") == "cba"
sleeps[0] = 0
go.idle_stats.update(woken=0, timed_out=0)
time.sleep(2.0)                                  # idle
idle = sleeps[0]
answers = [client.predict(f"x{i}", api_name="/rev") for i in range(10)]
assert answers == [f"{i}x" for i in range(10)], answers
print("RESULT", idle, go.idle_stats["woken"], flush=True)
demo.close()
"""


def idle_probe(mode: str) -> tuple[int, int]:
    from tests.conftest import free_port

    out = subprocess.run([sys.executable, "-c", IDLE_PROBE, mode, str(free_port())], cwd=ROOT,
                         capture_output=True, text=True, timeout=120,
                         env={"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                              "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                              "NO_PROXY": "127.0.0.1,localhost"})
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    idle, woken = line.split()[1:]
    return int(idle), int(woken)


def test_an_idle_queue_sleeps_until_an_event_arrives_and_events_still_run():
    plain_idle, _ = idle_probe("plain")
    assert plain_idle >= 300                  # Gradio's own loop: a wake-up every 1 ms
    idle, woken = idle_probe("trimmed")
    assert idle <= 2.0 / 0.05 + 5             # at most one look per 50 ms while idle
    assert woken >= 10                        # each of the 10 events woke the loop at once


SESSION_PROBE = """
import sys
import gradio as gr
from gradio.blocks import BlocksConfig
from gradio.state_holder import SessionState
calls = [0]
real = BlocksConfig.config_for_block
def counting(*a, **k):
    calls[0] += 1
    return real(*a, **k)
BlocksConfig.config_for_block = staticmethod(counting)
with gr.Blocks() as demo:
    boxes = [gr.Textbox(f"v{i}") for i in range(50)]
    state = gr.State(1)
eager = SessionState(demo)
eager_calls, calls[0] = calls[0], 0
from chatui.gradio_overheads import lazy_session_configs
lazy_session_configs()
calls[0] = 0
lazy = SessionState(demo)
lazy_calls = calls[0]
same = dict(eager.config_values) == dict(lazy.config_values)
same_components = list(eager.components) == list(lazy.components)
lazy._update_value_in_config(boxes[3]._id, "new")
print("RESULT", eager_calls, lazy_calls, same, same_components,
      lazy.config_values[boxes[3]._id]["props"]["value"])
"""


def test_a_new_session_builds_component_configs_only_when_read():
    out = subprocess.run([sys.executable, "-c", SESSION_PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=120,
                         env={"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1",
                              "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT"))
    eager_calls, lazy_calls, same, same_components, value = line.split()[1:]
    assert int(eager_calls) >= 50 and int(lazy_calls) == 0   # none built up front…
    assert same == same_components == "True"                 # …and the same when read
    assert value == "new"
