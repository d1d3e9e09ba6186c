"""The soak benchmark, short: a worker's memory stays bounded over consecutive diagnoses.

TensorFlow keeps ~7 MB per fitted model that nothing in-process gives back, so the bound comes
from recycling the worker child. With a memory ceiling below what one diagnosis leaves behind,
every diagnosis must run in a fresh child and each child's peak must stay at the first's;
without recycling the third peak would sit ~2 diagnoses' growth (≈ 340 MB) above the first.
The full run (`python -m bench.soak`) and its figures are in the README.
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
    soak = run_soak(
        redis_url(10), tmp_path, sequential=3, burst=0, budget=1, max_memory_mb=256, timeout=600
    )
    figures = summary(soak)["sequential"]
    assert figures["failed_or_stuck"] == 0, soak.sequential
    assert figures["children_used"] == 3, soak.sequential  # recycled after every diagnosis
    peaks = [s.rss_peak_mb for s in soak.sequential]
    assert max(peaks[1:]) <= 1.15 * peaks[0], peaks
    assert max(peaks) < 2048, peaks
