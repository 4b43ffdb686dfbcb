"""`simtrain compare` and `simtrain submit` turn their options into the request bodies the API takes
(the CLI run by typer's CliRunner against a fake API that records what it is sent)."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from cli.app import app
from cli.connect import Overrides
from cli.jobfields import JobFields
from core.compare.spec import ComparisonCreate
from core.jobspec import JobCreate


def _run(argv: list[str]) -> tuple[object, list[dict]]:
    """Run `simtrain ARGV` with the API answering every POST with an object of id "x-1"; returns the
    result and the JSON bodies that were POSTed."""
    posted: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append(json.loads(request.content))
        return httpx.Response(201, json={"id": "x-1", "status": "queued"})

    http = httpx.Client(transport=httpx.MockTransport(handler), base_url="http://simtrain.test")
    result = CliRunner().invoke(app, [*argv, "--api-key", "st_test"], obj=Overrides(http=http))
    return result, posted


def test_compare_arguments_become_a_valid_comparison_request(tmp_path):
    sim = tmp_path / "sim.json"
    sim.write_text('{"kind": "ordinal", "reduction_factor": 0.3}')
    result, posted = _run(
        [
            "compare",
            "--dataset", "builtin:digits",
            "--classes", "0, 1,2",
            "--similarity", f"@{sim}",
            "--variant", 'simloss={"kind":"simloss"}',
            "--variant", 'soft={"kind":"soft_labels","temperature":2}',
            "--seeds", "2",
            "--epochs", "4",
            "--no-wait",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "x-1"
    [body] = posted
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
    spec = JobFields(dataset="builtin:digits", similarity='{"kind":"ordinal"}', epochs=3).spec()
    assert spec == {"dataset": "builtin:digits", "similarity": {"kind": "ordinal"}, "training": {"epochs": 3}}
    result, posted = _run(
        ["submit", "--dataset", "builtin:digits", "--loss", '{"kind":"simloss"}', "--epochs", "3",
         "--similarity", '{"kind":"ordinal"}']
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert posted == [spec | {"loss": {"kind": "simloss"}}]
    JobCreate.model_validate(posted[0])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "--dataset", "builtin:digits"], "at least one --variant"),
        (["compare", "--variant", "a={}"], "compare needs --dataset"),
        (["compare", "--dataset", "builtin:digits", "--variant", "nojson"], "expected NAME=LOSS_JSON"),
        (["compare", "--dataset", "builtin:digits", "--variant", "a={bad"], "--variant a is not valid JSON"),
        (["submit", "--dataset", "builtin:digits", "--model", "@/nonexistent.json"], "--model: cannot read"),
    ],
)
def test_bad_compare_arguments_exit_with_a_message(argv, message):
    result, posted = _run(argv)
    assert result.exit_code == 1 and posted == []
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
