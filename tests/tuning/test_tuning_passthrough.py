"""`POST /v1/tuning` passes a job's routing and warm start through to its trials: `priority` and
`resources` reach every trial job (read back through the API) and its broker queue; a `model.init` (the
base's, or one a `model.init.*` search path makes) is checked at submit as a job's is: a bad source is a
422 naming the field and stores nothing; another tenant's job is as if missing. No worker: one driver
step creates and sends the first trials.

.venv/bin/pytest -q tests/tuning/test_tuning_passthrough.py
"""

from __future__ import annotations

import uuid

from broker_testlib import queued_by_queue

from core.db import jobs as jobstate
from core.tuning import driver

JOB = {"dataset": "builtin:digits", "model": {"kind": "mlp", "hidden": [8]}, "training": {"epochs": 1}}
URL = "/v1/tuning"


def _field(r) -> str:
    assert r.status_code == 422, r.text
    return r.json()["error"]["details"][0]["field"]


def _succeeded_job(svc, key: str) -> str:
    """A job of the tenant of `key`, ended succeeded (the worker played: nothing trained)."""
    job_id = svc.create_job(JOB, key=key)["id"]
    with svc.sessionmaker() as s:
        assert jobstate.claim(s, job_id, "test-worker", 60) == jobstate.ClaimOutcome.claimed
        assert jobstate.finish(s, job_id, "test-worker", jobstate.JobStatus.succeeded, final_metrics={})
    return job_id


def _trial_jobs(svc, study_id: str) -> list[dict]:
    with svc.sessionmaker() as s:
        assert driver.run_step(s, svc.settings, study_id) == "stepped"  # sends through the real broker
    study = svc.client.get(f"{URL}/{study_id}", headers=svc.auth_a).json()
    ids = [t["job_id"] for t in study["trials"] if t["job_id"]]
    return [svc.client.get(f"/v1/jobs/{i}", headers=svc.auth_a).json() for i in ids]


def test_trials_carry_the_priority_and_resources_and_go_to_their_queue(embedded, tuning_body):
    svc, q = embedded, embedded.settings.queue
    r = svc.client.post(
        URL, json=tuning_body(priority="low", resources={"device": "gpu"}), headers=svc.auth_a
    )
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["priority"] == "low" and r.json()["spec"]["resources"] == {"device": "gpu"}
    trials = _trial_jobs(svc, r.json()["id"])
    assert len(trials) == 2  # parallel
    assert {(j["priority"], j["resources"]["device"]) for j in trials} == {("low", "gpu")}
    assert queued_by_queue(svc.settings).get(f"{q}.gpu") == 2  # the study's own steps go to `q`
    assert _field(svc.client.post(URL, json=tuning_body(priority="soon"), headers=svc.auth_a)) == "priority"


def test_a_bad_warm_start_is_a_422_naming_the_field_and_nothing_is_stored(embedded, tuning_body):
    svc = embedded
    done = _succeeded_job(svc, svc.key_a)
    theirs = _succeeded_job(svc, svc.key_b)
    model = {"kind": "mlp", "hidden": [8]}
    cases = [
        ({"init": {"from_job": str(uuid.uuid4())}}, None, "model.init.from_job", "no job"),
        ({"init": {"from_job": theirs}}, None, "model.init.from_job", "no job"),  # another tenant's
        ({"init": {"weights": str(uuid.uuid4())}}, None, "model.init.weights", "no uploaded weights"),
        ({"init": {"from_job": done, "checkpoint": 2}}, None, "model.init.checkpoint", "epoch 2"),
        ({"init": {"from_job": done}},
         {"model.init.from_job": {"type": "categorical", "choices": [done, theirs]}},
         "search_space.model.init.from_job", "no job"),
    ]  # fmt: skip
    for init, space, field, says in cases:
        b = tuning_body(model={**model, **init})
        if space is not None:
            b["search_space"] = {**b["search_space"], **space}
        r = svc.client.post(URL, json=b, headers=svc.auth_a)
        assert _field(r) == field and says in r.json()["error"]["message"], (field, r.text)
    assert svc.client.get(URL, headers=svc.auth_a).json()["items"] == []

    r = svc.client.post(
        URL, json=tuning_body(model={**model, "init": {"from_job": done}}), headers=svc.auth_a
    )
    assert r.status_code == 201, r.text
    assert [j["spec"]["model"]["init"] for j in _trial_jobs(svc, r.json()["id"])] == [{"from_job": done}] * 2
    r = svc.client.post(
        URL, json=tuning_body(model={**model, "init": {"from_job": theirs}}), headers=svc.auth_b
    )
    assert r.status_code == 201, r.text  # its own tenant may
