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
