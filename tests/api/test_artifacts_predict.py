"""Artifacts of a succeeded job (listed, streamed with ETag) and predictions from its trained model."""

from __future__ import annotations

import hashlib

import httpx
import numpy as np
import pytest
import torch

TRAINED_CLASSES = ["0", "1", "2"]  # what the `trained_artifacts` fixture trains on

JOB = {
    "dataset": "builtin:digits",
    "classes": TRAINED_CLASSES,
    "similarity": {"kind": "ordinal"},
    "loss": {"kind": "simloss"},
    "model": {"kind": "linear"},
    "training": {"epochs": 2},
}


def test_artifacts_and_predict(service, trained_artifacts, finish_with_artifacts):
    job = service.create_job(JOB)
    # before it succeeded: no artifacts, no predictions
    assert service.client.get(f"/v1/jobs/{job['id']}/artifacts", headers=service.auth_a).json()["items"] == []
    r = service.client.post(
        f"/v1/jobs/{job['id']}/predict", json={"inputs": [[0.0] * 64]}, headers=service.auth_a
    )
    assert r.status_code == 409 and "queued" in r.json()["error"]["message"]

    finish_with_artifacts(service, job["id"], trained_artifacts)
    got = service.client.get(f"/v1/jobs/{job['id']}", headers=service.auth_a).json()
    assert got["status"] == "succeeded" and got["progress"]["fraction"] == 1.0 and got["device"] == "cpu"

    listed = service.client.get(f"/v1/jobs/{job['id']}/artifacts", headers=service.auth_a).json()["items"]
    names = {a["name"]: a for a in listed}
    assert {"model.onnx", "model.safetensors", "model.json", "metrics.json", "curves.png"} <= set(names)
    assert names["curves.png"]["content_type"] == "image/png"

    expected = (trained_artifacts["dir"] / "model.onnx").read_bytes()
    r = service.client.get(f"/v1/jobs/{job['id']}/artifacts/model.onnx", headers=service.auth_a)
    assert r.status_code == 200
    assert r.content == expected
    assert r.headers["content-length"] == str(len(expected))
    assert r.headers["etag"] == f'"{hashlib.sha256(expected).hexdigest()}"'
    r2 = service.client.get(
        f"/v1/jobs/{job['id']}/artifacts/model.onnx",
        headers={**service.auth_a, "If-None-Match": r.headers["etag"]},
    )
    assert r2.status_code == 304
    assert r2.content == b"" and r2.headers["cache-control"] == r.headers["cache-control"]
    for matching in ("*", f"W/{r.headers['etag']}", f'"other", {r.headers["etag"]}'):
        r3 = service.client.get(
            f"/v1/jobs/{job['id']}/artifacts/model.onnx",
            headers={**service.auth_a, "If-None-Match": matching},
        )
        assert r3.status_code == 304, matching
    r4 = service.client.get(
        f"/v1/jobs/{job['id']}/artifacts/model.onnx",
        headers={**service.auth_a, "If-None-Match": '"other"'},
    )
    assert r4.status_code == 200 and r4.content == expected
    for bad in ("nope.bin", "..%2Fsecret", ".hidden", "a" * 65):
        r = service.client.get(f"/v1/jobs/{job['id']}/artifacts/{bad}", headers=service.auth_a)
        assert r.status_code in (404, 422), (bad, r.status_code)
        assert r.json()["error"]["code"] in ("not_found", "invalid_input")

    ds = trained_artifacts["dataset"]
    rows = ds.x[:5]
    r = service.client.post(
        f"/v1/jobs/{job['id']}/predict", json={"inputs": rows.tolist()}, headers=service.auth_a
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["classes"] == TRAINED_CLASSES
    probs = np.asarray(body["probabilities"])
    assert probs.shape == (5, 3) and np.allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    with torch.no_grad():
        want = torch.softmax(trained_artifacts["result"].model(torch.from_numpy(rows)), dim=-1).numpy()
    assert np.allclose(probs, want, atol=1e-4)
    assert body["predictions"] == [TRAINED_CLASSES[i] for i in want.argmax(axis=1)]
    assert len(service.app.state.model_cache) == 1

    # shape, values and row-count bounds name `inputs`
    for inputs in ([[0.0] * 63], [[0.0] * 64, [0.0] * 63], [["a"] * 64], [1.0, 2.0], []):
        r = service.client.post(
            f"/v1/jobs/{job['id']}/predict", json={"inputs": inputs}, headers=service.auth_a
        )
        assert r.status_code == 422, (inputs, r.text)
        assert r.json()["error"]["details"][0]["field"].startswith("inputs")


def test_predict_row_bound(make_service, trained_artifacts, finish_with_artifacts):
    svc = make_service("sqlite", max_predict_rows=2)
    job = svc.create_job(JOB)
    finish_with_artifacts(svc, job["id"], trained_artifacts)
    r = svc.client.post(
        f"/v1/jobs/{job['id']}/predict", json={"inputs": [[0.0] * 64] * 3}, headers=svc.auth_a
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "inputs"
    # nested rows in the feature shape work too (here the shape is flat: 64)
    r = svc.client.post(
        f"/v1/jobs/{job['id']}/predict", json={"inputs": [[0.5] * 64] * 2}, headers=svc.auth_a
    )
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2


class _Flipping(httpx.BaseTransport):
    """The service's answers with the last byte of every artifact body flipped (the headers as sent)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        if "/artifacts/" in request.url.path and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def test_the_client_checks_an_artifact_download_against_its_etag(
    embedded, trained_artifacts, finish_with_artifacts, tmp_path
):
    from core.client import SimtrainClient, TransportError

    job = embedded.create_job(JOB)
    finish_with_artifacts(embedded, job["id"], trained_artifacts)
    expected = (trained_artifacts["dir"] / "model.onnx").read_bytes()
    with SimtrainClient(api_key=embedded.key_a, http=embedded.client) as client:
        path = client.download_artifact(job["id"], "model.onnx", tmp_path / "ok" / "model.onnx")
    assert path.read_bytes() == expected

    out = tmp_path / "bad"
    http = httpx.Client(base_url="http://testserver", transport=_Flipping(embedded.client._transport))
    client = SimtrainClient(api_key=embedded.key_a, http=http)
    with http, client, pytest.raises(TransportError) as err:
        client.download_artifact(job["id"], "model.onnx", out / "model.onnx")
    assert err.value.code == "etag_mismatch" and "model.onnx" in err.value.message
    assert not (out / "model.onnx").exists() and not list(out.iterdir())  # nothing written, no partial file
