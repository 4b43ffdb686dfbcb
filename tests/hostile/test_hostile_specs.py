"""Hostile job specs: every one is a 4xx naming the field (`details[].loc`), nothing is stored, and a body
far over the bound is refused before it is read, with the API process's memory staying flat.

Complements tests/api/test_jobs.py (unknown loss kind, epochs over a configured maximum, a `../` dataset,
a NaN literal in a matrix): here the other places NaN / Infinity / strings / booleans can hide, class lists
over MAX_CLASSES, nested unknown loss kinds, epochs over the default maximum, bodies JSON cannot nest or
number, and a 10^4 x 10^4 matrix against a real uvicorn server.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hostile_testlib import add_key, raw_post
from sqlalchemy import func, select

from core.db.models import Job
from core.similarity import MAX_CLASSES
from tests.specs import SIMLOSS_JOB

BASE: dict[str, Any] = SIMLOSS_JOB
NAN = "__NAN__"  # replaced by a bare token after json.dumps (JSON cannot carry NaN; Python's json reads it)
INF = "__INF__"
NEG_INF = "__NEG_INF__"


def _raw(body: dict) -> str:
    return (
        json.dumps(body)
        .replace(f'"{NAN}"', "NaN")
        .replace(f'"{NEG_INF}"', "-Infinity")
        .replace(f'"{INF}"', "Infinity")
    )


def _with(**patch: Any) -> dict:
    return {**BASE, **patch}


CASES = [
    # class lists
    ("classes-over-max", _with(classes=[f"c{i}" for i in range(MAX_CLASSES + 1)]), ["classes"]),
    ("classes-100k", _with(classes=["x"] * 100_000), ["classes"]),
    ("class-name-huge", _with(classes=["0", "1" * 10_000]), ["classes", 1]),
    ("class-name-not-string", _with(classes=["0", 1]), ["classes", 1]),
    # NaN / Infinity as bare tokens and as strings, wherever a number goes
    ("nan-token-reduction", _with(similarity={"kind": "ordinal", "reduction_factor": NAN}),
     ["similarity", "reduction_factor"]),
    ("nan-string-matrix", _with(classes=["0", "1"], similarity={"kind": "matrix", "values": [[1, "NaN"], [0.5, 1]]}),
     ["similarity", "values"]),
    ("inf-token-ordinal-values", _with(similarity={"kind": "ordinal", "values": {"0": 0, "1": INF, "2": 2}}),
     ["similarity", "values"]),
    ("huge-number-is-inf", _with(classes=["0", "1"], similarity={"kind": "matrix", "values": [[1, 0.5], [0.5, 1]]},
                                 loss={"kind": "soft_labels", "temperature": 1e400}),
     ["loss", "temperature"]),
    ("neg-inf-label-smoothing", _with(loss={"kind": "cross_entropy", "label_smoothing": NEG_INF}),
     ["loss", "label_smoothing"]),
    ("nan-token-learning-rate", _with(training={"epochs": 2, "learning_rate": NAN}),
     ["training", "learning_rate"]),
    ("nan-string-learning-rate", _with(training={"epochs": 2, "learning_rate": "NaN"}),
     ["training", "learning_rate"]),
    ("nan-component-weight", _with(loss={"kind": "combined", "components": [
        {"weight": NAN, "loss": {"kind": "cross_entropy"}}]}), ["loss", "components", 0, "weight"]),
    # unknown loss kinds, also nested and of the wrong type
    ("loss-kind-nested-unknown", _with(loss={"kind": "combined", "components": [
        {"weight": 1, "loss": {"kind": "rm -rf /"}}]}), ["loss", "components", 0, "loss"]),
    ("loss-kind-number", _with(loss={"kind": 7}), ["loss"]),
    ("loss-kind-missing", _with(loss={"label_smoothing": 0.1}), ["loss"]),
    ("similarity-kind-unknown", _with(similarity={"kind": "__proto__"}), ["similarity"]),
    # epochs beyond the configured (default) maximum, and not integers
    ("epochs-over-default-max", _with(training={"epochs": 1001}), ["training", "epochs"]),
    ("epochs-huge", _with(training={"epochs": 10**18}), ["training", "epochs"]),
    ("epochs-zero", _with(training={"epochs": 0}), ["training", "epochs"]),
    ("epochs-negative", _with(training={"epochs": -5}), ["training", "epochs"]),
    ("epochs-float", _with(training={"epochs": 2.5}), ["training", "epochs"]),
    ("epochs-string", _with(training={"epochs": "5"}), ["training", "epochs"]),
    ("epochs-bool", _with(training={"epochs": True}), ["training", "epochs"]),
    ("seed-bool", _with(training={"epochs": 2, "seed": False}), ["training", "seed"]),
    ("batch-size-huge", _with(training={"epochs": 2, "batch_size": 10**9}), ["training", "batch_size"]),
    ("model-hidden-huge", _with(model={"kind": "mlp", "hidden": [10**9]}), ["model", "hidden", 0]),
]  # fmt: skip


@pytest.mark.parametrize(("body", "loc"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_spec_is_422_naming_the_field(embedded, body, loc):
    r = embedded.client.post(
        "/v1/jobs", content=_raw(body), headers={**embedded.auth_a, "Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert err["code"] in ("invalid_input", "invalid_spec"), err
    locs = [d["loc"] for d in err["details"]]  # dotted-path parts, as strings
    want = [str(p) for p in loc]
    assert any(d[: len(want)] == want for d in locs), (want, locs)
    assert err["message"].split(":")[0] == ".".join(locs[0])
    assert len(r.content) < 64 * 1024  # the error does not echo a huge input back
    with embedded.sessionmaker() as s:
        assert s.execute(select(func.count()).select_from(Job)).scalar_one() == 0
    assert embedded.queued_messages() == 0


def test_similarity_preview_refuses_nan_and_too_many_classes(embedded):
    c, auth = embedded.client, {**embedded.auth_a, "Content-Type": "application/json"}
    body = {"classes": ["a", "b"], "similarity": {"kind": "matrix", "values": [[1, NAN], [0.5, 1]]}}
    r = c.post("/v1/similarity/preview", content=_raw(body), headers=auth)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"][:2] == ["similarity", "values"]
    body = {"classes": [f"c{i}" for i in range(MAX_CLASSES + 1)], "similarity": {"kind": "identity"}}
    r = c.post("/v1/similarity/preview", content=_raw(body), headers=auth)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["classes"], r.text


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000 + "]" * 100_000,  # nesting the parser cannot follow
        '{"dataset": "builtin:digits", "training": {"epochs": ' + "9" * 5000 + "}}",  # over int digit limit
        '{"dataset": "builtin:digits"',  # truncated
        "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),  # not UTF-8
    ],
    ids=["deep-nesting", "5000-digit-int", "truncated", "not-utf8"],
)
def test_unparseable_bodies_are_4xx_not_500(embedded, raw):
    r = embedded.client.post(
        "/v1/jobs",
        content=raw.encode("latin-1") if raw.startswith("\xed") else raw.encode(),
        headers={**embedded.auth_a, "Content-Type": "application/json"},
    )
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"]["code"] in ("bad_request", "invalid_input")


# ------------------------------------------------------------------- a 10^4 x 10^4 matrix at a real server


def _matrix_rows(n: int):
    """Rows of an n x n similarity matrix as JSON text, made one at a time (never all in memory)."""
    off = ",".join(["0.5"] * (n - 1))
    for i in range(n):
        row = off[: 4 * i] + "1.0," + off[4 * i :] if i < n - 1 else off + ",1.0"
        yield "[" + row + "]"


def _matrix_body(n: int):
    """(content length, chunk generator) of a job whose similarity is an n x n matrix."""
    job = {k: v for k, v in BASE.items() if k != "similarity"} | {"classes": [str(i) for i in range(10)]}
    head = json.dumps(job)[:-1] + ', "similarity": {"kind": "matrix", "values": ['
    tail = "]}}"
    row_len = 2 + 3 * n + (n - 1)
    length = len(head) + n * row_len + (n - 1) + len(tail)

    def chunks():
        yield head.encode()
        buf: list[str] = []
        size = 0
        for i, row in enumerate(_matrix_rows(n)):
            buf.append(row if i == 0 else "," + row)
            size += len(buf[-1])
            if size >= 256 * 1024:
                yield "".join(buf).encode()
                buf, size = [], 0
        yield ("".join(buf) + tail).encode()

    return length, chunks


def _small_matrix_job(n: int) -> str:
    length, chunks = _matrix_body(n)
    raw = b"".join(chunks()).decode()
    assert len(raw) == length
    return raw


@pytest.mark.timeout(180)
def test_huge_matrix_is_refused_before_it_is_read(api_server):
    """A 10^4 x 10^4 matrix (~400 MB of JSON) is a 413 from the body bound, with or without a declared
    length, long before it is read; a 1001 x 1001 one (under the bound) is a 422 before any tensor is built.
    The API process's peak RSS grows by less than 200 MB through all of it."""
    import httpx

    server = api_server()  # embedded default; the JSON bound is the default 8 MiB
    key = add_key(server.database_url, "tenant-a")
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.post("/v1/jobs", json=BASE, headers=auth).status_code == 201  # warm: imports, caches
        assert client.post("/v1/jobs", json=_with(loss={"kind": "x"}), headers=auth).status_code == 422
    baseline = server.peak_rss_mb()

    length, chunks = _matrix_body(10_000)
    assert length > 350 * 1024 * 1024
    for chunked in (False, True):
        headers = dict(auth) if chunked else {**auth, "Content-Length": str(length)}
        start = time.monotonic()
        status, body, sent = raw_post(server.port, "/v1/jobs", headers, chunks(), chunked=chunked)
        took = time.monotonic() - start
        assert status == 413, (chunked, status, body, server.logs())
        assert body["error"]["code"] == "payload_too_large"
        assert sent < 64 * 1024 * 1024, f"{sent} bytes were sent before the refusal (chunked={chunked})"
        assert took < 30, took
        print(f"10^4 x 10^4 matrix (chunked={chunked}): 413 after {sent} of {length} body bytes, {took:.2f}s")

    with httpx.Client(base_url=server.url, timeout=60) as client:
        n = MAX_CLASSES + 1
        raw = _small_matrix_job(n)
        assert len(raw) < 8 * 1024 * 1024
        r = client.post("/v1/jobs", content=raw, headers=auth)
        assert r.status_code == 422, r.text[:500]
        assert r.json()["error"]["details"][0]["loc"][:2] == ["similarity", "values"]
        # square and under MAX_CLASSES, but not the size of the class list: refused by size, not built
        r = client.post("/v1/jobs", content=_small_matrix_job(MAX_CLASSES), headers=auth)
        assert r.status_code == 422, r.text[:500]
        assert r.json()["error"]["details"][0]["loc"][0] == "similarity"
        assert len(client.get("/v1/jobs", headers=auth).json()["items"]) == 1  # only the warm-up job
        assert client.get("/healthz").status_code == 200

    growth = server.peak_rss_mb() - baseline
    print(f"API peak RSS: {baseline:.0f} MB before, +{growth:.1f} MB after the hostile bodies")
    assert growth < 200, f"peak RSS grew by {growth:.0f} MB"
