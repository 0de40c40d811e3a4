"""Per-event costs inside Gradio 6.31 that this app does not need, switched off at startup.

Found by profiling the app under load (py-spy, bench/bench_scale.py): each is paid on every
event or every streamed update, by every user, and under load that CPU is taken from
everyone's first token. Neither changes what a user or an API client sees.

* After EVERY event Gradio rebuilds a pandas summary of its last 10,000 events for its
  /monitoring page (not enabled here): 4-10 ms of CPU each on these machines, and a browser
  message is about six events. `GRADIO_ANALYTICS_CACHE_FREQUENCY` (read when the queue is
  created) makes it once per 10,000 events; an operator's own value wins.
* Every iteration of every event (so every streamed update) enters and leaves
  `gradio.utils.MatplotlibBackendMananger`, which runs `import matplotlib` twice. When
  matplotlib is not installed (it is not a dependency), each of those is a failed import that
  searches every `sys.path` entry again: ~11% of the app's CPU at 32 streaming users
  (91.9 → 80.9 ms per answer, p50 first token 708 → 480 ms). Marking the module absent in
  `sys.modules` makes the same ImportError immediate.
* While nothing is queued, Gradio's queue loop sleeps 1 ms and looks again: a thousand
  wake-ups a second, ~4% of a core for an idle app (a Space, a replica waiting for users),
  and at one user it is most of the CPU an answer costs. Here the idle loop sleeps until an
  event is pushed or a running one ends (either wakes it at once), or 50 ms at most, so a
  new message still starts without delay.
* Every new browser session (a page load; each gradio_client) builds the config of EVERY
  component of the page up front, only for Gradio's deep links, which this app does not use
  (`SessionState.__init__`): ~10% of the app's CPU in bench_scale at 32 users, growing with
  each tab. Here each component's config is built the first time something reads it; the
  mapping has the same keys and values as before.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
from collections.abc import MutableMapping
import os
import sys
import types


IDLE_WAIT_MAX = 0.05


def trim_gradio_overheads() -> None:
    """Call before `Blocks.queue()` (the analytics setting is read when the queue is made)."""
    quiet_idle_queue()
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "10000")
    lazy_session_configs()
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        # `import matplotlib` now raises ModuleNotFoundError at once, as it would after the
        # search; nothing can import it in this process either way (it is not installed).
        sys.modules["matplotlib"] = None  # type: ignore[assignment]


# The one float object the patched queues sleep on while idle: recognised by identity, so no
# other sleep in gradio.queueing (progress, estimations, timeouts) changes.
_IDLE = float("0.001")
_wakers: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
# How the idle waits ended (read by tests): woken by a push / finished event, or timed out.
idle_stats = {"woken": 0, "timed_out": 0}


def _waker() -> asyncio.Event:
    loop = asyncio.get_running_loop()
    if (event := _wakers.get(loop)) is None:
        event = _wakers[loop] = asyncio.Event()
    return event


def _wake() -> None:
    try:
        _waker().set()
    except RuntimeError:  # no running loop: nothing is waiting in this thread
        pass


async def _sleep(delay, result=None):
    if delay is not _IDLE:
        return await asyncio.sleep(delay, result)
    waker = _waker()
    try:
        await asyncio.wait_for(waker.wait(), IDLE_WAIT_MAX)
        idle_stats["woken"] += 1
    except TimeoutError:
        idle_stats["timed_out"] += 1
    waker.clear()  # a push after this is seen by the loop's next look at the queue
    return result


def quiet_idle_queue() -> None:
    """Patch gradio.queueing.Queue (once) as described in the module docstring."""
    from gradio import queueing

    Queue = queueing.Queue
    if getattr(Queue, "_chatui_quiet", False):
        return
    shim = types.ModuleType("asyncio_shim")
    shim.__dict__.update({k: getattr(asyncio, k) for k in dir(asyncio) if not k.startswith("__")})
    shim.sleep = _sleep
    queueing.asyncio = shim

    init, push, process = Queue.__init__, Queue.push, Queue.process_events

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.sleep_when_free = _IDLE

    @functools.wraps(push)
    async def push_and_wake(self, *args, **kwargs):
        try:
            return await push(self, *args, **kwargs)
        finally:
            _wake()

    @functools.wraps(process)
    async def process_and_wake(self, *args, **kwargs):
        try:
            return await process(self, *args, **kwargs)
        finally:
            _wake()  # a concurrency slot is free: queued events may start

    Queue.__init__, Queue.push, Queue.process_events = __init__, push_and_wake, process_and_wake
    Queue._chatui_quiet = True


class LazyConfigs(MutableMapping):
    """`SessionState.config_values` built on first read: the same keys as Gradio's eager
    dict (every block of the page), each value `config_for_block` of that block."""

    def __init__(self, blocks_config, keys):
        self._blocks_config, self._keys, self._built = blocks_config, list(keys), {}

    def __getitem__(self, key):
        if key not in self._built:
            if key not in self._keys:
                raise KeyError(key)
            self._built[key] = self._blocks_config.config_for_block(
                key, [], self._blocks_config.blocks[key])
        return self._built[key]

    def __setitem__(self, key, value):
        if key not in self._keys:
            self._keys.append(key)
        self._built[key] = value

    def __delitem__(self, key):
        self._keys.remove(key)
        self._built.pop(key, None)

    def __iter__(self):
        return iter(list(self._keys))

    def __len__(self):
        return len(self._keys)

    def __contains__(self, key):
        return key in self._keys


def lazy_session_configs() -> None:
    """Patch gradio.state_holder.SessionState (once) as described in the module docstring.

    Its __init__ is re-stated with the configs deferred; if this Gradio's own __init__ sets
    other attributes than the ones re-stated here, nothing is patched."""
    from copy import copy

    import gradio as gr
    from gradio import state_holder

    SessionState = state_holder.SessionState
    if getattr(SessionState, "_chatui_lazy", False):
        return
    original = SessionState.__init__

    def __init__(self, blocks):
        self.blocks_config = copy(blocks.default_config)
        self.config_values = LazyConfigs(
            self.blocks_config, [k for k in self.blocks_config.blocks if k in blocks.blocks])
        self.state_data = {}
        self._state_ttl = {}
        self.is_closed = False
        self.STATE_TTL_WHEN_CLOSED = 1 if os.getenv("GRADIO_IS_E2E_TEST", None) else 3600

    with gr.Blocks() as probe:
        gr.Textbox()
    theirs, ours = object.__new__(SessionState), object.__new__(SessionState)
    original(theirs, probe)
    __init__(ours, probe)
    if vars(theirs).keys() != vars(ours).keys() or (
            dict(theirs.config_values) != dict(ours.config_values)):
        return
    SessionState.__init__ = functools.wraps(original)(__init__)
    SessionState._chatui_lazy = True
