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
"""

from __future__ import annotations

import importlib.util
import os
import sys


def trim_gradio_overheads() -> None:
    """Call before `Blocks.queue()` (the analytics setting is read when the queue is made)."""
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "10000")
    if "matplotlib" not in sys.modules and importlib.util.find_spec("matplotlib") is None:
        # `import matplotlib` now raises ModuleNotFoundError at once, as it would after the
        # search; nothing can import it in this process either way (it is not installed).
        sys.modules["matplotlib"] = None  # type: ignore[assignment]
