"""The comparison report: its numbers are the children's stored metrics, its paired differences are the
statistics `core.metrics.evaluate` computes, pooled over seeds, and its verdicts are the paired test across
seeds after Holm's correction over the variants."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from compare_testlib import CLASSES, N_VAL, SIM_SPEC, synthetic_runs

from core.compare.report import ChildRun, build_report
from core.compare.service import comparison_report
from core.compare.stats import PAIRED_T, WILCOXON, holm


@pytest.fixture(scope="module")
def runs() -> list[ChildRun]:
    return synthetic_runs()


@pytest.fixture(scope="module")
def report(runs) -> dict:
    return build_report(
        runs,
        classes=CLASSES,
        similarity_spec=SIM_SPEC,
        seeds=[10, 11],
        variants=["baseline", "near", "other"],
        n_boot=500,
    )


def test_variant_metrics_are_mean_and_std_of_the_childrens_metrics(runs, report):
    json.dumps(report, allow_nan=False)  # storable as JSON anywhere
    for name in ("baseline", "near", "other"):
        mine = [r for r in runs if r.variant == name]
        entry = report["variants"][name]
        assert entry["succeeded"] == 2 and sorted(entry["job_ids"]) == sorted(r.job_id for r in mine)
        for key in (
            "accuracy",
            "mistake_severity",
            "mean_similarity",
            "mean_class_distance",
            "nll",
            "ece",
            "macro_f1",
            "top2_accuracy",
            "loss",
        ):
            vals = [r.metrics[key] for r in mine]
            assert entry["metrics"][key]["values"] == vals
            assert entry["metrics"][key]["mean"] == pytest.approx(np.mean(vals), abs=1e-12)
            assert entry["metrics"][key]["std"] == pytest.approx(np.std(vals, ddof=1), abs=1e-12)
        conf = np.sum([r.metrics["confusion_matrix"] for r in mine], axis=0)
        assert entry["confusion_matrix"] == conf.tolist()
        assert entry["curves"]["epoch"] == [1, 2]
        assert entry["curves"]["train_loss"] == pytest.approx([1.0, 0.5])
    stored = {r["job_id"]: r["metrics"] for r in report["runs"]}
    for r in runs:
        assert stored[r.job_id] == {k: v for k, v in r.metrics.items() if k != "confusion_matrix"}
    assert report["headline"] == ["accuracy", "mistake_severity", "mean_similarity", "mean_class_distance"]
    assert "differences" not in report["variants"]["baseline"]


def test_paired_differences_are_the_stored_metrics_pooled_over_seeds(runs, report):
    by = {(r.variant, r.seed): r for r in runs}
    for name in ("near", "other"):
        diffs = report["variants"][name]["differences"]
        for m in ("accuracy", "mean_similarity", "mean_class_distance"):  # plain means: equal val sizes
            base = np.mean([by["baseline", s].metrics[m] for s in (10, 11)])
            var = np.mean([by[name, s].metrics[m] for s in (10, 11)])
            assert diffs[m]["baseline_value"] == pytest.approx(base, abs=1e-9)
            assert diffs[m]["variant_value"] == pytest.approx(var, abs=1e-9)
            assert diffs[m]["diff"] == pytest.approx(var - base, abs=1e-9)
            assert [d["diff"] for d in diffs[m]["per_seed"]] == pytest.approx(
                [by[name, s].metrics[m] - by["baseline", s].metrics[m] for s in (10, 11)]
            )
        # mistake severity is a mean over mistakes: pooled = all severities / all mistakes
        sev = diffs["mistake_severity"]
        for key, variant in (("baseline_value", "baseline"), ("variant_value", name)):
            mistakes = [(1 - by[variant, s].metrics["accuracy"]) * N_VAL for s in (10, 11)]
            total = sum(by[variant, s].metrics["mistake_severity"] * k for s, k in zip((10, 11), mistakes))
            assert sev[key] == pytest.approx(total / sum(mistakes), abs=1e-9)
        for m, d in diffs.items():
            assert d["ci_low"] <= d["diff"] <= d["ci_high"], m
            assert d["distinguishable"] == (d["ci_low"] > 0 or d["ci_high"] < 0)
            assert d["n"] == 2 * N_VAL and d["seeds_paired"] == 2 and d["levels"] == "strata_and_samples"
            # two seeds: the paired t-test across them (the signed-rank test cannot reach alpha)
            assert d["test"] == PAIRED_T and d["correction"] == "holm" and d["alpha"] == 0.05
            assert d["verdict"] in ("better", "worse", "no evidence")
            assert (d["verdict_reason"] is None) == (d["verdict"] != "no evidence")
            per_seed = [p["diff"] for p in d["per_seed"]]
            assert d["effect_size"]["mean_diff"] == d["diff"]
            assert (d["effect_size"]["ci_low"], d["effect_size"]["ci_high"]) == (d["ci_low"], d["ci_high"])
            if np.std(per_seed) > 0:
                assert d["effect_size"]["d_z"] == pytest.approx(np.mean(per_seed) / np.std(per_seed, ddof=1))
    for m in report["headline"]:  # Holm across the two variants, per metric
        near_m, other_m = (report["variants"][v]["differences"][m] for v in ("near", "other"))
        assert [near_m["p_adjusted"], other_m["p_adjusted"]] == pytest.approx(
            holm([near_m["p_value"], other_m["p_value"]])
        )
    near = report["variants"]["near"]["differences"]
    # same accuracy, every mistake moved next to the truth: severity and distance strictly better
    assert near["accuracy"]["diff"] == 0.0 and not near["accuracy"]["distinguishable"]
    assert near["mistake_severity"]["improved"] and near["mistake_severity"]["ci_high"] < 0
    assert near["mean_class_distance"]["improved"] and near["mean_similarity"]["improved"]


def test_with_enough_seeds_the_signed_rank_test_gives_the_verdicts():
    seeds = list(range(10, 18))  # 8 seeds, 2 variants: 2 * 2 / 2**8 <= 0.05
    rep = build_report(
        synthetic_runs(tuple(seeds)),
        classes=CLASSES,
        similarity_spec=SIM_SPEC,
        seeds=seeds,
        variants=["baseline", "near", "other"],
        n_boot=300,
    )
    assert (
        rep["statistics"]["correction"] == "holm" and rep["statistics"]["interval"] == "two_level_bootstrap"
    )
    assert rep["alpha"] == 0.05 and rep["version"] == 2
    near = rep["variants"]["near"]["differences"]
    assert {d["test"] for d in near.values()} == {WILCOXON}
    # "near" improves severity, similarity and distance on all 8 seeds: p = 2 / 2**8, times 2 by Holm
    for m in ("mistake_severity", "mean_similarity", "mean_class_distance"):
        assert near[m]["verdict"] == "better" and near[m]["p_adjusted"] == pytest.approx(4 / 256), m
    assert near["accuracy"]["verdict"] == "no evidence" and near["accuracy"]["p_value"] == 1.0  # equal


def test_one_seed_gives_no_evidence_and_still_the_sample_interval(runs):
    rep = build_report(
        [r for r in runs if r.seed == 10],
        classes=CLASSES,
        similarity_spec=SIM_SPEC,
        seeds=[10],
        variants=["baseline", "near", "other"],
        n_boot=300,
    )
    for v in ("near", "other"):
        for m, d in rep["variants"][v]["differences"].items():
            assert d["verdict"] == "no evidence" and d["test"] is None and d["p_value"] is None, m
            assert "1 seed" in d["verdict_reason"]
            assert d["levels"] == "samples" and d["ci_low"] <= d["diff"] <= d["ci_high"]
    # the interval still tells "near"'s severity apart: every one of its mistakes is a neighbour
    assert rep["variants"]["near"]["differences"]["mistake_severity"]["improved"]


def test_failed_children_are_listed_and_left_out(runs):
    failed = ChildRun(
        job_id="x",
        variant="other",
        seed=11,
        status="failed",
        error={"code": "non_finite_loss", "message": "nan"},
    )
    subset = [r for r in runs if not (r.variant == "other" and r.seed == 11)] + [failed]
    rep = build_report(
        subset,
        classes=CLASSES,
        similarity_spec=SIM_SPEC,
        seeds=[10, 11],
        variants=["baseline", "near", "other"],
        n_boot=200,
    )
    other = rep["variants"]["other"]
    assert other["runs"] == 2 and other["succeeded"] == 1
    assert other["metrics"]["accuracy"]["n"] == 1 and other["metrics"]["accuracy"]["std"] == 0.0
    assert (
        other["differences"]["accuracy"]["n"] == N_VAL
        and other["differences"]["accuracy"]["seeds_paired"] == 1
    )
    assert next(r for r in rep["runs"] if r["job_id"] == "x")["error"]["code"] == "non_finite_loss"


def test_comparison_report_reads_jobs_epochs_and_predictions_from_the_database(runs, tmp_path):
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    from core.db.models import Base, Comparison, Job, JobArtifact, JobEpoch, Tenant
    from core.storage import make_storage

    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    storage = make_storage(tmp_path / "store")
    with Session(engine) as s:
        tenant = Tenant(name="t")
        s.add(tenant)
        s.flush()
        comp = Comparison(
            tenant_id=tenant.id,
            spec={
                "classes": CLASSES,
                "similarity": SIM_SPEC,
                "seed_values": [10, 11],
                "variant_names": ["baseline", "near", "other"],
            },
        )
        s.add(comp)
        s.flush()
        ids = {}
        for r in runs:
            job = Job(
                tenant_id=tenant.id,
                dataset_ref="builtin:digits",
                spec={"training": {"seed": r.seed}},
                status="succeeded",
                epochs=2,
                epoch=2,
                final_metrics=r.metrics,
                comparison_id=comp.id,
                variant=r.variant,
            )
            s.add(job)
            s.flush()
            ids[job.id] = r
            for rec in r.history:
                s.add(JobEpoch(job_id=job.id, epoch=rec["epoch"], record=rec))
            buf = io.BytesIO()
            np.savez(buf, **r.predictions)
            key = f"jobs/{job.id}/artifacts/predictions.npz"
            storage.put_bytes(key, buf.getvalue())
            s.add(
                JobArtifact(
                    job_id=job.id,
                    name="predictions.npz",
                    size_bytes=len(buf.getvalue()),
                    sha256="0" * 64,
                    content_type="application/octet-stream",
                    storage_key=key,
                )
            )
        s.commit()
        rep = comparison_report(s, storage, comp, n_boot=500)
    direct = build_report(
        runs,
        classes=CLASSES,
        similarity_spec=SIM_SPEC,
        seeds=[10, 11],
        variants=["baseline", "near", "other"],
        n_boot=500,
    )
    for name in ("near", "other"):
        for m, d in direct["variants"][name]["differences"].items():
            got = rep["variants"][name]["differences"][m]
            assert (got["diff"], got["ci_low"], got["ci_high"]) == (d["diff"], d["ci_low"], d["ci_high"])
    assert rep["variants"]["near"]["metrics"] == direct["variants"]["near"]["metrics"]
    engine.dispose()
