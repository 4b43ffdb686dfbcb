"""`resolve_init`: the tensors and classes a job's `model.init` names, or SpecError naming the field.

From a succeeded job of the same tenant (its stored `model.safetensors`, classes from `model.json`) or an
upload (`POST /v1/weights`, classes as given); a missing, foreign, unfinished or damaged source is a
`SpecError` on `model.init.from_job` / `model.init.weights`, which fails the job as invalid.
"""

from __future__ import annotations

import json
import uuid

import pytest
import torch
from safetensors.torch import load
from storage_testlib import safetensors_bytes, upload_weights

from core.errors import SpecError
from core.models.spec import InitSpec
from core.weights_store import resolve_init

JOB = {"dataset": "builtin:digits", "model": {"kind": "linear"}, "training": {"epochs": 1}}


def _succeeded_job(svc, trained_artifacts, finish_with_artifacts) -> str:
    job_id = svc.create_job(JOB)["id"]
    finish_with_artifacts(svc, job_id, trained_artifacts)
    return job_id


def _resolve(svc, init, tenant=None):
    with svc.sessionmaker() as s:
        return resolve_init(s, svc.storage, tenant or svc.tenant_a, init)


def test_from_a_succeeded_job(service, trained_artifacts, finish_with_artifacts):
    job_id = _succeeded_job(service, trained_artifacts, finish_with_artifacts)
    init = _resolve(service, {"from_job": job_id})
    stored = load((trained_artifacts["dir"] / "model.safetensors").read_bytes())
    assert set(init.tensors) == set(stored)
    for name, tensor in stored.items():
        assert torch.equal(init.tensors[name], tensor), name
    assert list(init.classes) == ["0", "1", "2"]
    assert init.source == f"job:{job_id}"
    assert _resolve(service, InitSpec(from_job=job_id)).source == init.source  # the parsed spec too


def test_from_uploaded_weights(embedded):
    tensors = {"body.weight": torch.randn(3, 64), "body.bias": torch.randn(3)}
    classes = json.dumps(["a", "b", "c"])
    with_classes = upload_weights(
        embedded.client, embedded.auth_a, safetensors_bytes(tensors), classes=classes
    )
    bare = upload_weights(embedded.client, embedded.auth_a, safetensors_bytes(tensors))
    init = _resolve(embedded, {"weights": with_classes.json()["id"]})
    assert list(init.classes) == ["a", "b", "c"] and init.source == f"weights:{with_classes.json()['id']}"
    assert all(torch.equal(init.tensors[k], v) for k, v in tensors.items())
    assert _resolve(embedded, {"weights": bare.json()["id"]}).classes is None


def test_unusable_jobs_are_spec_errors_on_from_job(service, trained_artifacts, finish_with_artifacts):
    job_id = _succeeded_job(service, trained_artifacts, finish_with_artifacts)
    queued = service.create_job(JOB)["id"]
    cases = [
        ({"from_job": str(uuid.uuid4())}, service.tenant_a, "no job"),
        ({"from_job": job_id}, service.tenant_b, "no job"),  # another tenant's
        ({"from_job": queued}, service.tenant_a, "is queued"),
    ]
    for init, tenant, says in cases:
        with pytest.raises(SpecError) as err:
            _resolve(service, init, tenant)
        assert err.value.field == "model.init.from_job" and says in err.value.reason, err.value


def test_damaged_or_missing_stored_models_are_spec_errors(embedded, trained_artifacts, finish_with_artifacts):
    job_id = _succeeded_job(embedded, trained_artifacts, finish_with_artifacts)
    key = f"jobs/{job_id}/artifacts/model.safetensors"
    good = embedded.storage.get_bytes(key)
    embedded.storage.put_bytes(key, good[: len(good) // 2])
    with pytest.raises(SpecError, match="cannot be read") as err:
        _resolve(embedded, {"from_job": job_id})
    assert err.value.field == "model.init.from_job"
    embedded.storage.delete(key)
    with pytest.raises(SpecError, match="missing"):
        _resolve(embedded, {"from_job": job_id})
    embedded.storage.put_bytes(key, good)
    embedded.storage.put_bytes(f"jobs/{job_id}/artifacts/model.json", b"{not json")
    with pytest.raises(SpecError, match="model.json"):
        _resolve(embedded, {"from_job": job_id})


def test_unusable_weights_are_spec_errors_on_weights(embedded):
    theirs = upload_weights(embedded.client, embedded.auth_b, safetensors_bytes()).json()["id"]
    mine = upload_weights(embedded.client, embedded.auth_a, safetensors_bytes()).json()["id"]
    for weights_id in (str(uuid.uuid4()), theirs):
        with pytest.raises(SpecError, match="no uploaded weights") as err:
            _resolve(embedded, {"weights": weights_id})
        assert err.value.field == "model.init.weights"
    embedded.storage.delete(f"weights/{embedded.tenant_a}/{mine}.safetensors")
    with pytest.raises(SpecError, match="missing") as err:
        _resolve(embedded, {"weights": mine})
    assert err.value.field == "model.init.weights"
    with pytest.raises(SpecError) as err:
        _resolve(embedded, {"from_job": mine, "weights": mine})
    assert err.value.field.startswith("model.init")
