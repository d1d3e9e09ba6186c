"""Floor of the fix-efficacy benchmark: three fast faulty runs (digits, 14×14 images) retrained
with their top fix by the worker's trainer. The whole set is `python -m bench.fix_efficacy`."""

from __future__ import annotations

import logging
import math

import pytest

from bench.fix_efficacy import RECOVERED, measure, recovery
from bench.score import load_cases

# One fix that edits the model, one that edits the fit arguments, one that edits model and loss.
CASES = ("insufficient_capacity-04", "batch_size_too_large-04", "output_loss_mismatch-04")


@pytest.mark.tf
def test_fixes_close_the_gap_to_the_healthy_twin() -> None:
    pytest.importorskip("tensorflow")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    cases = [c for c in load_cases() if c["case_id"] in CASES]
    assert len(cases) == len(CASES)
    rows = measure(cases, seed=0)
    for row in rows:
        assert row["fix_error"] is None, row
        assert row["top"] == row["cause"], row
        assert row["recovery"] >= RECOVERED, row


def test_recovery_is_the_share_of_the_gap_closed() -> None:
    assert recovery(faulty=2.0, fixed=1.0, twin=0.0) == 0.5
    assert recovery(faulty=2.0, fixed=2.5, twin=1.0) == -0.5  # made worse
    assert recovery(faulty=float("inf"), fixed=0.5, twin=0.5) == 1.0  # a diverged run healed
    assert recovery(faulty=float("inf"), fixed=float("inf"), twin=0.5) == 0.0
    assert math.isnan(recovery(faulty=1.0, fixed=1.0, twin=1.2))  # no gap to recover
