"""benchmarks/worker_memory.py: what it runs and how it reads its results (the runs themselves are
Ray clusters of a minute each, measured by hand, not in the test suite)."""
import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.worker_memory import _runs, table  # noqa: E402


def test_runs_are_protocol_slash_workers():
    assert _runs("channel/1, compiled/2,plain/16") == [["channel", 1], ["compiled", 2], ["plain", 16]]
    for bad in ("channel", "ring/2", "plain/two"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected PROTOCOL/WORKERS"):
            _runs(bad)


def test_the_table_checks_each_worker_against_its_shard_plus_150_mb():
    results = {
        "channel/2": {"peak_rss_mb": [200.0, 224.8], "shard_mb": 74.8, "validation_mb": 15.0,
                      "validation_errors": [0.1274, 0.0974]},
        "plain/2": {"peak_rss_mb": [200.0, 224.9], "shard_mb": 74.8, "validation_mb": 15.0,
                    "validation_errors": [0.5]},
        "plain/1": {"peak_rss_mb": [329.5], "shard_mb": 149.5, "validation_mb": 29.9, "validation_errors": [0.5]},
        "compiled/2": {"error": "WorkerLostError: gone"},
    }
    rows = table(results).splitlines()[2:]
    assert rows[0] == "| channel/2 | 200.0, 224.8 | 74.8 | 224.8 | yes | 15.0 | yes | 12.74 %, 9.74 % |"
    assert "| 224.8 | **no** | 15.0 | yes |" in rows[1]  # the worse worker decides
    assert rows[2] == "| plain/1 | 329.5 | 149.5 | 299.5 | **no** | 29.9 | **no** | 50.00 % |"  # 0.1 MB over 329.4
    assert rows[3].startswith("| compiled/2 | failed: WorkerLostError: gone |")
