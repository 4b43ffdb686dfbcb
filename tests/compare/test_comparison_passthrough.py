"""`POST /v1/comparisons` passes a job's routing and warm start through to its children: `priority` and
`resources` reach every child job (read back through the API) and its broker queue; a `model.init` is
checked at submit as a job's is (`core.weights_store.check_init_source`): a bad source is a 422 naming
the request field and stores nothing; another tenant's job is as if missing.

.venv/bin/pytest -q tests/compare/test_comparison_passthrough.py
"""

from __future__ import annotations

import uuid

from broker_testlib import queued_by_queue

from core.db import jobs as jobstate

SIM = {"kind": "ordinal", "reduction_factor": 0.5}
JOB = {"dataset": "builtin:digits", "model": {"kind": "mlp", "hidden": [8]}, "training": {"epochs": 1}}


def body(**over) -> dict:
    b = {
        "dataset": "builtin:digits",
        "similarity": SIM,
        "model": {"kind": "mlp", "hidden": [8]},
        "training": {"epochs": 1, "seed": 3},
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "seeds": 2,
    }
    return b | over


def _post(svc, b: dict, auth=None):
    return svc.client.post("/v1/comparisons", json=b, headers=auth or svc.auth_a)


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


def _child_jobs(svc, comp: dict, auth=None) -> list[dict]:
    out = []
    for child in comp["children"]:
        r = svc.client.get(f"/v1/jobs/{child['job_id']}", headers=auth or svc.auth_a)
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def test_children_carry_the_priority_and_resources_and_go_to_their_queue(embedded):
    svc, q = embedded, embedded.settings.queue
    r = _post(svc, body(priority="high", resources={"device": "gpu"}))
    assert r.status_code == 201, r.text
    comp = r.json()
    assert comp["spec"]["priority"] == "high" and comp["spec"]["resources"] == {"device": "gpu"}
    kids = _child_jobs(svc, comp)
    assert len(kids) == 4
    assert {(j["priority"], j["resources"]["device"]) for j in kids} == {("high", "gpu")}
    assert queued_by_queue(svc.settings) == {f"{q}.gpu": 4}

    r = _post(svc, body(seeds=1, resources={"device": "cpu"}))  # priority left out: normal
    assert r.status_code == 201, r.text
    kids = _child_jobs(svc, r.json())
    assert {(j["priority"], j["resources"]["device"]) for j in kids} == {("normal", "cpu")}
    assert queued_by_queue(svc.settings) == {f"{q}.gpu": 4, f"{q}.cpu": 2}
    assert _field(_post(svc, body(priority="urgent"))) == "priority"
    assert _field(_post(svc, body(resources={"device": "tpu"}))) == "resources.device"


def test_a_bad_warm_start_is_a_422_naming_the_request_field_and_nothing_is_stored(embedded):
    svc = embedded
    queued = svc.create_job(JOB)["id"]
    done = _succeeded_job(svc, svc.key_a)
    model = {"kind": "mlp", "hidden": [8]}
    missing = str(uuid.uuid4())
    cases = [
        (body(model={**model, "init": {"from_job": missing}}), "model.init.from_job", "no job"),
        (body(model={**model, "init": {"from_job": queued}}), "model.init.from_job", "is queued"),
        (body(model={**model, "init": {"weights": missing}}), "model.init.weights", "no uploaded weights"),
        (body(model={**model, "init": {"from_job": done, "checkpoint": 2}}), "model.init.checkpoint",
         "keeps no checkpoint of epoch 2"),
        (body(variants=[{"name": "ok", "loss": {"kind": "simloss"}},
                        {"name": "warm", "loss": {"kind": "simloss"},
                         "model": {**model, "init": {"weights": missing}}}]),
         "variants.1.model.init.weights", "no uploaded weights"),
        (body(model={**model, "init": {"from_job": done}},
              sweep=[{"name": "c", "path": "model.init.checkpoint", "values": [1]}]),
         "sweep.0.values.0", "keeps no checkpoint of epoch 1"),
    ]  # fmt: skip
    for b, field, says in cases:
        r = _post(svc, b)
        assert _field(r) == field and says in r.json()["error"]["message"], (field, r.text)
    assert svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"] == []
    jobs = svc.client.get("/v1/jobs", headers=svc.auth_a).json()["items"]
    assert sorted(j["id"] for j in jobs) == sorted([queued, done])  # no child was stored

    r = _post(svc, body(model={**model, "init": {"from_job": done}}))  # a usable source: every child
    assert r.status_code == 201, r.text
    assert [j["spec"]["model"]["init"] for j in _child_jobs(svc, r.json())] == [{"from_job": done}] * 4


def test_another_tenants_job_is_no_warm_start_source(embedded):
    svc = embedded
    theirs = _succeeded_job(svc, svc.key_b)
    b = body(seeds=1, model={"kind": "mlp", "hidden": [8], "init": {"from_job": theirs}})
    r = _post(svc, b)
    assert _field(r) == "model.init.from_job" and "no job" in r.json()["error"]["message"], r.text
    assert svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"] == []
    r = _post(svc, b, auth=svc.auth_b)  # its own tenant may
    assert r.status_code == 201, r.text
    assert len(_child_jobs(svc, r.json(), auth=svc.auth_b)) == 2
