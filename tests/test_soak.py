"""The soak benchmark, short: a worker's memory stays flat over consecutive diagnoses.

TensorFlow keeps ~6 MB of every fitted model that nothing in-process gives back (not
clear_session, gc, malloc_trim or its kernel cache; README), so the bound is the worker child's
recycling: by default every diagnosis runs in a fresh child (three children for three
diagnoses), and no later child peaks above the first. The small plan (no LR probes) keeps
this test short; the full run (`python -m bench.soak`) and its figures are in the README.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import run_soak, summary
from tests.workers_env import redis_available, redis_url

pytestmark = [
    pytest.mark.integration,
    pytest.mark.tf,
    pytest.mark.skipif(not redis_available(), reason="needs Redis (LOSSDOCTOR_TEST_REDIS)"),
]


def test_consecutive_probe_diagnoses_keep_the_worker_child_memory_flat(tmp_path: Path) -> None:
    soak = run_soak(redis_url(10), tmp_path, sequential=3, burst=0, budget=1, plan="small")
    figures = summary(soak)["sequential"]
    assert figures["failed_or_stuck"] == 0, soak.sequential
    assert figures["children_used"] == 3, soak.sequential  # a fresh child per diagnosis
    peaks = [s.rss_peak_mb for s in soak.sequential]
    assert max(peaks[1:]) <= 1.15 * peaks[0], peaks
    assert max(peaks) < 2048, peaks
