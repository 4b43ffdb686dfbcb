"""The `sweep` block of a swept comparison's report: per headline metric and grid point, the children's
stored metrics by seed, their mean, std and Student t interval, and the point's paired difference to the
baseline with its verdict, all equal to what the report says elsewhere."""

from __future__ import annotations

import json

import numpy as np
import pytest
from compare_testlib import CLASSES, SIM_SPEC, SWEEP, SWEPT_VARIANTS, swept_runs
from scipy import stats as sps

from core.compare.report import build_report

SEEDS = [10, 11, 12]


@pytest.fixture(scope="module")
def runs():
    return swept_runs()


@pytest.fixture(scope="module")
def report(runs) -> dict:
    return build_report(runs, classes=CLASSES, similarity_spec=SIM_SPEC, seeds=SEEDS,
                        variants=SWEPT_VARIANTS, n_boot=300, sweep=SWEEP)  # fmt: skip


def test_the_sweep_rows_are_the_childrens_stored_metrics(runs, report):
    json.dumps(report, allow_nan=False)
    block = report["sweep"]
    assert block["axes"] == SWEEP["axes"] and block["variants"] == ["simloss"]
    assert set(block["tables"]) == set(report["headline"])
    by = {(r.variant, r.seed): r for r in runs}
    for metric, rows in block["tables"].items():
        assert [(row["name"], row["point"]) for row in rows] == [
            ("simloss@r=0.2", {"r": 0.2}), ("simloss@r=0.8", {"r": 0.8})
        ]  # fmt: skip
        for row in rows:
            stored = [by[row["name"], s].metrics[metric] for s in SEEDS]
            assert row["seeds"] == SEEDS and row["values"] == stored
            assert row["job_ids"] == [by[row["name"], s].job_id for s in SEEDS]
            assert row["n"] == 3 and row["mean"] == pytest.approx(np.mean(stored), abs=1e-12)
            assert row["std"] == pytest.approx(np.std(stored, ddof=1), abs=1e-12)
            low, high = (
                sps.t.interval(0.95, 2, loc=np.mean(stored), scale=sps.sem(stored))
                if np.std(stored) > 0
                else (np.mean(stored), np.mean(stored))  # scipy answers nan for a zero spread
            )
            assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high), abs=1e-9)
            # the same numbers as the report's variant entry and its difference to the baseline
            assert report["variants"][row["name"]]["metrics"][metric]["values"] == stored
            d = report["variants"][row["name"]]["differences"][metric]
            assert (row["diff"], row["diff_ci_low"], row["diff_ci_high"]) == (
                d["diff"],
                d["ci_low"],
                d["ci_high"],
            )
            assert (row["verdict"], row["test"], row["p_adjusted"]) == (
                d["verdict"],
                d["test"],
                d["p_adjusted"],
            )
            assert row["verdict"] in ("better", "worse", "no evidence") and row["test"] == "paired_t_test"
        base = block["baseline"][metric]
        assert base["values"] == [by["baseline", s].metrics[metric] for s in SEEDS]
    # r = 0.2 moved every mistake next to the true class: its severity is lower than the baseline's
    sev = block["tables"]["mistake_severity"][0]
    assert sev["mean"] < block["baseline"]["mistake_severity"]["mean"] and sev["diff"] < 0


def test_a_report_without_a_sweep_has_no_sweep_block_and_one_seed_has_no_interval(runs):
    plain = build_report(runs, classes=CLASSES, similarity_spec=SIM_SPEC, seeds=SEEDS,
                         variants=SWEPT_VARIANTS, n_boot=50)  # fmt: skip
    assert "sweep" not in plain
    one = [r for r in runs if r.seed == 10]
    rep = build_report(one, classes=CLASSES, similarity_spec=SIM_SPEC, seeds=[10], variants=SWEPT_VARIANTS,
                       n_boot=50, sweep=SWEEP)  # fmt: skip
    row = rep["sweep"]["tables"]["accuracy"][0]
    assert row["n"] == 1 and row["std"] == 0.0 and row["ci_low"] is None and row["ci_high"] is None
    assert row["verdict"] == "no evidence" and row["test"] is None
