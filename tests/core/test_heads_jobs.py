"""Tests of a job's head, loss and decision rule together (core/decision_spec.py, core/jobspec.py): the
fields' defaults and bounds, what `validate_job` refuses (naming `loss.kind`, `model.head` or
`decision`), and the decision as model.json and the final metrics record it.

Run: cd /work/main && .venv/bin/python -m pytest tests/core/test_heads_jobs.py -q
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.decision_spec import decision_of, decision_rules, decision_summary
from core.errors import SpecError
from core.jobspec import JobCreate, validate_job

CLASSES = ["low", "mid", "high", "top"]
ORDINAL = {"kind": "ordinal", "values": {"low": 0, "mid": 1, "high": 2, "top": 3}}


def job(**fields) -> JobCreate:
    return JobCreate.model_validate({"dataset": "builtin:digits", **fields})


def refused(**fields) -> SpecError:
    with pytest.raises(SpecError) as info:
        validate_job(job(**fields), CLASSES, max_epochs=10)
    return info.value


def test_defaults_and_what_is_stored():
    spec = validate_job(job(), CLASSES, max_epochs=10)
    assert spec["decision"] == "argmax" and spec["decision_threshold"] == 0.5
    assert decision_of(spec) == {"rule": "argmax", "threshold": 0.5}
    assert decision_of({"model": {}}) == {"rule": "argmax", "threshold": 0.5}  # a spec from before
    spec = validate_job(
        job(model={"head": "coral"}, loss={"kind": "coral"}, decision="median", decision_threshold=0.7),
        CLASSES,
        max_epochs=10,
    )
    assert decision_of(spec) == {"rule": "median", "threshold": 0.7}
    assert spec["model"]["head"] == "coral" and spec["loss"] == {"kind": "coral"}


@pytest.mark.parametrize(
    "fields, loc",
    [
        ({"decision": "mode"}, ("decision",)),
        ({"decision_threshold": 1.0}, ("decision_threshold",)),
        ({"decision_threshold": 0.0}, ("decision_threshold",)),
        ({"decision_threshold": "0.5"}, ("decision_threshold",)),
        ({"model": {"head": "cumulative"}}, ("model", "head")),
    ],
)
def test_structural_errors_name_the_field(fields, loc):
    with pytest.raises(ValidationError) as info:
        job(**fields)
    assert info.value.errors()[0]["loc"] == loc


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"model": {"head": "coral"}}, "loss.kind"),  # cross_entropy (the default) with a coral head
        ({"model": {"head": "corn"}, "loss": {"kind": "coral"}}, "loss.kind"),
        ({"model": {"head": "coral"}, "loss": {"kind": "emd"}, "similarity": ORDINAL}, "loss.kind"),
        ({"loss": {"kind": "corn"}}, "loss.kind"),  # a corn loss with the softmax head
        (
            {
                "model": {"head": "coral"},
                "loss": {"kind": "coral"},
                "similarity": {"kind": "ordinal", "cyclic": True},
            },
            "model.head",
        ),
        (
            {
                "model": {"head": "corn"},
                "loss": {"kind": "corn"},
                "similarity": {"kind": "groups", "groups": [["low", "mid"]], "within": 0.5},
            },
            "model.head",
        ),
        (
            {
                "model": {"head": "corn"},
                "loss": {"kind": "corn"},
                "similarity": {"kind": "ordinal", "values": {"low": 3, "mid": 2, "high": 1, "top": 0}},
            },
            "model.head",
        ),
        ({"decision": "median"}, "decision"),  # unordered classes
        ({"decision": "expected_value", "similarity": {"kind": "ordinal", "cyclic": True}}, "decision"),
    ],
)
def test_what_does_not_go_together_is_refused_naming_the_field(fields, field):
    assert refused(**fields).field == field


def test_the_refusals_say_what_to_write():
    assert "loss kind 'coral'" in refused(model={"head": "coral"}).reason
    falling = {"kind": "ordinal", "values": {"low": 3, "mid": 2, "high": 1, "top": 0}}
    reason = refused(model={"head": "corn"}, loss={"kind": "corn"}, similarity=falling).reason
    assert "['top', 'high', 'mid', 'low']" in reason


@pytest.mark.parametrize(
    "fields",
    [
        {"decision": "min_expected_cost"},
        {"decision": "median", "similarity": ORDINAL},
        {"decision": "expected_value", "similarity": {"kind": "ordinal"}, "loss": {"kind": "emd"}},
        {"decision": "median", "model": {"head": "corn"}, "loss": {"kind": "corn"}},  # class order
        {"decision": "median", "model": {"head": "coral"}, "loss": {"kind": "coral"}, "similarity": ORDINAL},
        {"model": {"head": "coral"}, "loss": {"kind": "coral"}, "similarity": {"kind": "identity"}},
    ],
)
def test_what_goes_together_is_accepted(fields):
    validate_job(job(**fields), CLASSES, max_epochs=10)


def test_decision_rules_per_head_and_spec():
    every = ("argmax", "min_expected_cost", "expected_value", "median")
    assert decision_rules("softmax", None, CLASSES) == ("argmax", "min_expected_cost")
    assert decision_rules("softmax", ORDINAL, CLASSES) == every
    assert decision_rules("coral", None, CLASSES) == every
    assert decision_rules("corn", {"kind": "identity"}, CLASSES) == every


def test_the_final_metrics_report_the_decision_with_its_row():
    metrics = {"decisions": [{"rule": "argmax", "accuracy": 0.8}, {"rule": "median", "accuracy": 0.9}]}
    summary = decision_summary(metrics, {"rule": "median", "threshold": 0.6})
    assert summary == {"rule": "median", "threshold": 0.6, "accuracy": 0.9}
    assert decision_summary({}, {"rule": "argmax", "threshold": 0.5}) == {"rule": "argmax", "threshold": 0.5}
