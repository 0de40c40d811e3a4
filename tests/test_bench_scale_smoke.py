"""bench/bench_scale.py --quick runs end to end: its paced upstream, one app replica and the
raw Gradio queue-protocol load generator agree on every token (0 errors), and it writes the
JSON the README's numbers come from. The proxy and ChatInterface paths start more servers
than a smoke test should; `python bench/bench_scale.py --quick` runs them all."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_quick_scale_bench_relays_every_token_and_writes_its_json(tmp_path):
    out = tmp_path / "scale.json"
    proc = subprocess.run(
        [sys.executable, "bench/bench_scale.py", "--quick", "--paths", "direct,upstream",
         "--levels", "1,4", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    cells = {(c["path"], c["users"]): c for c in result["cells"]}
    assert set(cells) == {("direct", 1), ("direct", 4), ("upstream", 1), ("upstream", 4)}
    for c in cells.values():
        assert c["errors"] == 0, c["error_examples"]
        assert c["ttft_ms_p50"] > 0 and c["tok_s_per_stream_p50"] > 0
        assert c["tokens_relayed"] == c["samples"] * result["tokens_per_answer"]
    assert cells[("direct", 4)]["cpu_s"] > 0             # the app's CPU was measured
    assert "direct_p95_ttft_4_users_within_2x_of_1_and_0_errors" in result["targets"]
    assert "TTFT p50" in proc.stdout and result["loadavg_before"]
