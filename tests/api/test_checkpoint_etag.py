"""Conditional checkpoint downloads: the ETag of `model.safetensors` and `model.json` is the quoted SHA-256
of the body, If-None-Match (a tag, `*`, `W/`, a list) is 304 with no body, another tenant is 404 whatever
it sends, a repeated conditional request for weights loads no checkpoint, and the client checks what it
downloads against the ETag.

The checkpoints are written with the worker's own `CheckpointStore.save` into the service's storage, for
a job created through the API (no training: a few milliseconds).

.venv/bin/python -m pytest -q tests/api/test_checkpoint_etag.py
"""

from __future__ import annotations

import hashlib

import httpx
import pytest
import torch

from api.downloads import CACHE_CONTROL
from core.checkpoint import job_checkpoints
from core.client import SimtrainClient, TransportError

FILES = ("model.safetensors", "model.json")
MODEL_JSON = {"format": "simtrain.model", "classes": ["a", "b", "c"], "model": {"kind": "mlp", "hidden": [8]}}


def with_checkpoint(svc, epoch: int = 2) -> str:
    """A job of tenant A with a kept checkpoint of `epoch` (random weights: a payload of its own)."""
    job_id = svc.create_job()["id"]
    net = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    meta = {"step": 10 * epoch, "metrics": {"val_loss": 0.5}, "model_json": MODEL_JSON}
    job_checkpoints(svc.storage, job_id).save(epoch, {"epoch": epoch, "model": net.state_dict()}, meta=meta)
    return job_id


def url(job_id: str, name: str, epoch: int = 2) -> str:
    return f"/v1/jobs/{job_id}/checkpoints/{epoch}/{name}"


def quoted_sha256(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


def get(svc, path: str, if_none_match: str | None = None, auth: dict | None = None) -> httpx.Response:
    headers = {**(auth or svc.auth_a), **({"If-None-Match": if_none_match} if if_none_match else {})}
    return svc.client.get(path, headers=headers)


@pytest.mark.parametrize("name", FILES)
def test_etag_is_the_quoted_sha256_of_the_body(embedded, name):
    svc = embedded
    job_id = with_checkpoint(svc)
    r = get(svc, url(job_id, name))
    assert r.status_code == 200, r.text
    assert len(r.content) > 100
    assert r.headers["etag"] == quoted_sha256(r.content)
    assert r.headers["cache-control"] == CACHE_CONTROL
    assert r.headers["content-disposition"].startswith("attachment; ")
    again = get(svc, url(job_id, name))
    assert again.content == r.content and again.headers["etag"] == r.headers["etag"]


@pytest.mark.parametrize("name", FILES)
def test_if_none_match(embedded, name):
    svc = embedded
    job_id = with_checkpoint(svc)
    # `*` first, before anything was sent: the ETag is computed, not remembered
    star = get(svc, url(job_id, name), "*")
    assert star.status_code == 304 and star.content == b""
    full = get(svc, url(job_id, name))
    etag = full.headers["etag"]
    assert star.headers["etag"] == etag and star.headers["cache-control"] == CACHE_CONTROL
    other = quoted_sha256(b"something else")
    for sent in (etag, f"W/{etag}", f"{other}, W/{etag}", f"{other},{etag}"):
        r = get(svc, url(job_id, name), sent)
        assert r.status_code == 304, (sent, r.text)
        assert r.content == b"" and r.headers["etag"] == etag, sent
        assert "content-disposition" not in r.headers
    for sent in (other, f"W/{other}, {quoted_sha256(b'x')}", etag.strip('"'), '""'):
        r = get(svc, url(job_id, name), sent)
        assert r.status_code == 200, (sent, r.text)
        assert r.content == full.content and r.headers["etag"] == etag


def test_a_repeated_conditional_request_for_weights_loads_no_checkpoint(embedded, monkeypatch):
    from api.routes import checkpoints as route

    svc = embedded
    job_id = with_checkpoint(svc)
    loads = []
    decode = route.decode_checkpoint
    monkeypatch.setattr(route, "decode_checkpoint", lambda blob: loads.append(1) or decode(blob))
    path = url(job_id, "model.safetensors")
    etag = get(svc, path).headers["etag"]
    assert len(loads) == 1
    assert get(svc, path, etag).status_code == 304
    assert get(svc, path, "*").status_code == 304
    assert len(loads) == 1  # the metadata named the payload whose weights carry this ETag
    assert get(svc, path, quoted_sha256(b"older")).status_code == 200
    assert len(loads) == 2
    # a new checkpoint of the same epoch (a resumed job saving it again) is another payload: loaded again
    net = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    job_checkpoints(svc.storage, job_id).save(2, {"epoch": 2, "model": net.state_dict()}, meta={})
    r = get(svc, path, etag)
    assert r.status_code == 200 and r.headers["etag"] != etag and len(loads) == 3
    assert r.headers["etag"] == quoted_sha256(r.content)


@pytest.mark.parametrize("name", FILES)
def test_another_tenant_is_404_even_with_a_matching_tag(embedded, name):
    svc = embedded
    job_id = with_checkpoint(svc)
    etag = get(svc, url(job_id, name)).headers["etag"]
    assert get(svc, url(job_id, name), etag).status_code == 304
    for sent in (etag, "*", f"W/{etag}", None):
        r = get(svc, url(job_id, name), sent, auth=svc.auth_b)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", (sent, r.text)
        assert etag not in r.text and "etag" not in r.headers


@pytest.mark.parametrize("name", FILES)
def test_an_epoch_that_is_not_kept_is_404_even_for_any_tag(embedded, name):
    svc = embedded
    job_id = with_checkpoint(svc)
    r = get(svc, url(job_id, name, epoch=3), "*")
    assert r.status_code == 404 and r.json()["error"]["details"][0]["loc"] == ["epoch"], r.text


def test_a_too_long_if_none_match_is_422_naming_the_header(embedded):
    svc = embedded
    job_id = with_checkpoint(svc)
    r = get(svc, url(job_id, "model.json"), ", ".join([quoted_sha256(b"x")] * 20))
    assert r.status_code == 422, r.text
    assert "If-None-Match" in r.json()["error"]["message"]


def test_openapi_documents_304(embedded):
    paths = embedded.client.get("/openapi.json").json()["paths"]
    for name in FILES:
        route = paths[f"/v1/jobs/{{job_id}}/checkpoints/{{epoch}}/{name}"]["get"]
        assert {"200", "304", "404"} <= set(route["responses"]), route["responses"]
        assert any(p["name"] == "If-None-Match" and p["in"] == "header" for p in route["parameters"])


class Corrupting(httpx.BaseTransport):
    """The service's answers with the last byte of `name`'s body flipped (the headers as sent)."""

    def __init__(self, inner: httpx.BaseTransport, name: str) -> None:
        self.inner, self.name = inner, name

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = response.read()
        if request.url.path.endswith(self.name) and body:
            body = body[:-1] + bytes([body[-1] ^ 1])
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def test_client_download_checks_the_etag(embedded, tmp_path):
    svc = embedded
    job_id = with_checkpoint(svc)
    with SimtrainClient(api_key=svc.key_a, http=svc.client) as client:
        paths = client.download_checkpoint(job_id, 2, tmp_path / "ok")
    assert [p.name for p in paths] == list(FILES)
    for path in paths:
        assert quoted_sha256(path.read_bytes()) == get(svc, url(job_id, path.name)).headers["etag"]

    for name in FILES:
        out = tmp_path / f"bad-{name}"
        http = httpx.Client(base_url="http://testserver", transport=Corrupting(svc.client._transport, name))
        client = SimtrainClient(api_key=svc.key_a, http=http)
        with http, client, pytest.raises(TransportError) as err:
            client.download_checkpoint(job_id, 2, out)
        assert err.value.code == "etag_mismatch" and name in err.value.message
        assert not (out / name).exists()
        assert not [p for p in out.iterdir() if p.name.startswith(".download-")]  # no partial file left
