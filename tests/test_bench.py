"""Smoke test of the benchmark: ``python -m bench --quick --reps 1`` end to end on tiny models.

It checks that every section ran and produced numbers, and that the JSON and Markdown
files were written; it asserts nothing about timings (a shared 2-core machine makes them
noisy, and the benchmark's own targets are reported, not enforced).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("streaming_overhead", "time_to_first_token", "side_by_side", "stop_latency", "eight_bit", "loading", "startup")


def _numbers(value: Any) -> Iterator[float]:
    """Every int or float (not bool) anywhere in a JSON value."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)


def _medians(value: Any) -> Iterator[Any]:
    """Every ``median`` of a figure (``{"median", "samples", "n", "unit"}``) anywhere in a JSON value."""
    if isinstance(value, dict):
        if {"median", "samples", "n", "unit"} <= set(value):
            yield value["median"]
        for item in value.values():
            yield from _medians(item)
    elif isinstance(value, list):
        for item in value:
            yield from _medians(item)


def test_bench_quick_run_writes_every_section_with_numbers(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run([sys.executable, "-m", "bench", "--quick", "--reps", "1", "--out", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    result = json.loads((tmp_path / "latest.json").read_text())
    assert result["mode"] == "tiny" and result["quick"] is True and result["reps"] == 1
    machine = result["machine"]
    for key in ("cpu", "cores", "date", "versions"):
        assert machine[key], key
    for package in ("torch", "transformers", "gradio", "bitsandbytes"):
        assert package in machine["versions"]
    assert set(result["models"]) == {"seq2seq", "causal"}

    assert list(result["sections"]) == list(SECTIONS)
    for key, section in result["sections"].items():
        assert "error" not in section, f"{key}: {section.get('error')}"
        assert section["target"], key
        assert section["rows"], key
        for row in section["rows"]:
            assert {"measure", "seq2seq", "causal", "target", "met"} <= set(row), key
        medians = list(_medians(section["results"]))
        assert medians, f"{key} has no figures"
        numeric = [m for m in medians if isinstance(m, (int, float))]
        if key == "stop_latency":  # a run may end before its stop arrives (then it is not counted)
            assert numeric, f"{key}: no figure has samples"
        else:
            assert len(numeric) == len(medians), f"{key}: a figure has no samples: {medians}"
        assert any(True for _ in _numbers(section["results"])), key

    markdown = (tmp_path / "latest.md").read_text()
    assert "| # | Measure | Seq2seq | Causal | Target | Met |" in markdown
    for number in range(1, 8):
        assert f"\n| {number} |" in markdown
    assert "| # | Measure |" in proc.stdout  # the table is printed too
