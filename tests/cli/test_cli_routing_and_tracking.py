"""`simtrain submit`, `compare` and `tune` with `--priority`, `--device`, `--tracking-experiment` and
`--tracking-run-name`: the options reach the API (read back from it: the job, the comparison's children,
the study), and a value outside the choices is a usage error before anything is sent.

.venv/bin/pytest -q tests/cli/test_cli_routing_and_tracking.py
"""

from __future__ import annotations

import json

import pytest
from cli_testlib import simtrain

from cli.connect import Overrides

ROUTING = ["--priority", "high", "--device", "cpu"]
TRACKING = ["--tracking-experiment", "digits-study", "--tracking-run-name", "first-try"]
JOB = ["--dataset", "builtin:digits", "--model", '{"kind": "mlp", "hidden": [8]}', "--epochs", "1"]


def _run(svc, argv: list[str]):
    r = simtrain(argv, key=svc.key_a, obj=Overrides(http=svc.client))
    assert r.exit_code == 0, r.output
    return r


def _get(svc, path: str) -> dict:
    r = svc.client.get(path, headers=svc.auth_a)
    assert r.status_code == 200, r.text
    return r.json()


def test_submit_sends_the_priority_device_and_tracking(embedded):
    job_id = _run(embedded, ["submit", *JOB, *ROUTING, *TRACKING]).output.strip()
    job = _get(embedded, f"/v1/jobs/{job_id}")
    assert job["priority"] == "high" and job["resources"] == {"device": "cpu"}
    assert job["spec"]["tracking"] == {"mlflow": {"experiment": "digits-study", "run_name": "first-try"}}
    job_id = _run(embedded, ["submit", *JOB]).output.strip()  # none given: the defaults, no tracking
    job = _get(embedded, f"/v1/jobs/{job_id}")
    assert (job["priority"], job["resources"], job["spec"]["tracking"]) == (
        "normal",
        {"device": "auto"},
        None,
    )


def test_compare_sends_them_for_every_child(embedded):
    argv = [
        "compare",
        *JOB,
        "--variant",
        'soft={"kind": "soft_labels"}',
        "--similarity",
        '{"kind": "ordinal"}',
        "--seeds",
        "1",
        "--no-wait",
        "--json",
    ]
    comp = json.loads(_run(embedded, [*argv, "--priority", "low", "--device", "gpu", *TRACKING]).output)
    assert comp["spec"]["tracking"] == {"mlflow": {"experiment": "digits-study", "run_name": "first-try"}}
    kids = [_get(embedded, f"/v1/jobs/{c['job_id']}") for c in comp["children"]]
    assert len(kids) == 2 and {(j["priority"], j["resources"]["device"]) for j in kids} == {("low", "gpu")}
    assert {j["spec"]["tracking"]["mlflow"]["experiment"] for j in kids} == {"digits-study"}


def test_tune_sends_them_for_the_study(embedded):
    space = '{"training.learning_rate": {"type": "float", "low": 0.001, "high": 0.1, "log": true}}'
    argv = ["tune", *JOB, "--space", space, "--trials", "2", "--parallel", "1", "--no-wait", "--json"]
    study = json.loads(_run(embedded, [*argv, *ROUTING, "--tracking-experiment", "lr"]).output)
    spec = _get(embedded, f"/v1/tuning/{study['id']}")["spec"]
    assert spec["priority"] == "high" and spec["resources"] == {"device": "cpu"}
    assert spec["tracking"]["mlflow"] == {"experiment": "lr", "run_name": None}  # only what was given


@pytest.mark.parametrize("command", ["submit", "compare", "tune"])
@pytest.mark.parametrize(("option", "value"), [("--priority", "urgent"), ("--device", "tpu")])
def test_a_value_outside_the_choices_is_a_usage_error(embedded, command, option, value):
    r = simtrain([command, *JOB, option, value], key=embedded.key_a, obj=Overrides(http=embedded.client))
    assert r.exit_code == 2 and option in r.output, r.output
    assert _get(embedded, "/v1/jobs")["items"] == []
