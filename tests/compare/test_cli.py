"""`simtrain compare` and `simtrain submit` turn their options into the request bodies the API takes."""

from __future__ import annotations

import pytest

from api.cli import build_parser
from core.compare.cli import build_request
from core.compare.spec import ComparisonCreate
from core.jobspec import JobCreate


def test_compare_arguments_become_a_valid_comparison_request(tmp_path):
    sim = tmp_path / "sim.json"
    sim.write_text('{"kind": "ordinal", "reduction_factor": 0.3}')
    args = build_parser().parse_args(
        [
            "compare",
            "--dataset", "builtin:digits",
            "--classes", "0, 1,2",
            "--similarity", f"@{sim}",
            "--variant", 'simloss={"kind":"simloss"}',
            "--variant", 'soft={"kind":"soft_labels","temperature":2}',
            "--seeds", "2",
            "--epochs", "4",
        ]
    )  # fmt: skip
    body = build_request(args)
    assert body == {
        "dataset": "builtin:digits",
        "classes": ["0", "1", "2"],
        "similarity": {"kind": "ordinal", "reduction_factor": 0.3},
        "training": {"epochs": 4},
        "seeds": 2,
        "variants": [
            {"name": "simloss", "loss": {"kind": "simloss"}},
            {"name": "soft", "loss": {"kind": "soft_labels", "temperature": 2}},
        ],
    }
    ComparisonCreate.model_validate(body)


def test_submit_shares_the_job_fields_and_adds_the_loss():
    from core.compare.cli import base_spec_from_args

    args = build_parser().parse_args(
        ["submit", "--dataset", "builtin:digits", "--loss", '{"kind":"simloss"}', "--epochs", "3",
         "--similarity", '{"kind":"ordinal"}']
    )  # fmt: skip
    spec = base_spec_from_args(args)
    assert spec == {"dataset": "builtin:digits", "similarity": {"kind": "ordinal"}, "training": {"epochs": 3}}
    JobCreate.model_validate(spec | {"loss": {"kind": "simloss"}})


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--dataset", "builtin:digits"], "at least one --variant"),
        (["compare", "--dataset", "builtin:digits", "--variant", "nojson"], "expected NAME=LOSS_JSON"),
        (["compare", "--dataset", "builtin:digits", "--variant", "a={bad"], "--variant a is not valid JSON"),
    ],
)
def test_bad_compare_arguments_exit_with_a_message(argv, message):
    with pytest.raises(SystemExit) as exc:
        build_request(build_parser().parse_args(argv))
    assert message in str(exc.value)
