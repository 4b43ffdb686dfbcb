"""`POST /v1/comparisons` validation, limits and idempotency, and `/v1/similarity/preview` (no worker)."""

from __future__ import annotations

import io

import pytest

SIM = {"kind": "ordinal", "reduction_factor": 0.5}


def body(**over):
    b = {
        "dataset": "builtin:digits",
        "similarity": SIM,
        "training": {"epochs": 1, "seed": 3},
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "seeds": 2,
    }
    b.update(over)
    return b


def _field(r) -> str:
    assert r.status_code == 422, r.text
    return r.json()["error"]["details"][0]["field"]


def test_bad_requests_name_the_field_and_create_nothing(make_service):
    svc = make_service("sqlite", max_active_jobs_per_tenant=5)
    post = lambda b, **h: svc.client.post("/v1/comparisons", json=b, headers={**svc.auth_a, **h})
    assert _field(post(body(variants=[]))) == "variants"
    assert (
        _field(post(body(variants=[{"name": "Bad Name", "loss": {"kind": "simloss"}}]))) == "variants.0.name"
    )
    assert _field(post(body(variants=[{"name": "a", "loss": {"kind": "nope"}}]))) == "variants.0.loss.kind"
    dup = [{"name": "a", "loss": {"kind": "simloss"}}, {"name": "a", "loss": {"kind": "soft_labels"}}]
    assert _field(post(body(variants=dup))) == "variants"
    assert _field(post(body(variants=[{"name": "baseline", "loss": {"kind": "simloss"}}]))) == "variants"
    assert _field(post(body(seeds=11))) == "seeds"
    assert (
        _field(post(body(variants=[{"name": f"v{i}", "loss": {"kind": "simloss"}} for i in range(9)])))
        == "variants"
    )
    # needs the dataset: a loss that needs a similarity it was not given is the variant's field
    field = _field(
        post(
            body(
                similarity=None,
                variants=[
                    {"name": "ok", "loss": {"kind": "cross_entropy"}},
                    {"name": "s", "loss": {"kind": "simloss"}},
                ],
            )
        )
    )
    assert field.startswith("variants.1.loss") or field == "similarity", field
    assert _field(post(body(training={"epochs": 100_000}))) == "training.epochs"
    assert _field(post(body(classes=["0", "1", "x"]))) == "classes"
    assert post(body(dataset="00000000-0000-0000-0000-000000000000")).status_code == 404
    # 2 variants x 3 seeds = 6 children > the limit of 5 active jobs: can never fit
    assert _field(post(body(seeds=3))) == "seeds"
    assert svc.client.get("/v1/jobs", headers=svc.auth_a).json()["items"] == []
    assert svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"] == []

    # 4 children fit; then 4 more do not while those are active: 429, as for jobs
    r = post(body())
    assert r.status_code == 201, r.text
    assert len(r.json()["children"]) == 4 and svc.queued_messages() == 4
    r = post(body())
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    # baseline given explicitly (plain cross-entropy) is the same comparison, not a second baseline
    first = svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"][0]["id"]
    cancel = svc.client.post(f"/v1/comparisons/{first}/cancel", headers=svc.auth_a)
    assert cancel.status_code == 202 and cancel.json()["status"] == "cancelled"
    explicit = body(variants=[{"name": "baseline", "loss": {"kind": "cross_entropy"}}, *body()["variants"]])
    r = post(explicit)
    assert r.status_code == 201, r.text
    assert [v["name"] for v in r.json()["variants"]] == ["baseline", "simloss"] and len(
        r.json()["children"]
    ) == 4


def test_idempotency_cancel_and_the_report_of_a_cancelled_comparison(service):
    """On SQLite and PostgreSQL: replay / conflict, cancel, and the report stored when all children ended."""
    svc = service
    h = {**svc.auth_a, "Idempotency-Key": "k1"}
    first = svc.client.post("/v1/comparisons", json=body(seeds=1), headers=h)
    assert first.status_code == 201
    comp_id = first.json()["id"]
    again = svc.client.post("/v1/comparisons", json=body(seeds=1), headers=h)
    assert again.status_code == 200 and again.json()["id"] == comp_id
    assert len(svc.client.get("/v1/jobs", headers=svc.auth_a).json()["items"]) == 2
    assert svc.client.post("/v1/comparisons", json=body(seeds=2), headers=h).status_code == 409
    # the other tenant's same key is its own, and it cannot see or cancel this one
    other = svc.client.post(
        "/v1/comparisons", json=body(seeds=1), headers={**svc.auth_b, "Idempotency-Key": "k1"}
    )
    assert other.status_code == 201 and other.json()["id"] != comp_id
    for method, path in (("get", ""), ("get", "/report"), ("post", "/cancel")):
        assert (
            getattr(svc.client, method)(f"/v1/comparisons/{comp_id}{path}", headers=svc.auth_b).status_code
            == 404
        )
    assert svc.client.post("/v1/comparisons", json=body()).status_code == 401

    r = svc.client.post(f"/v1/comparisons/{comp_id}/cancel", headers=svc.auth_a)
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    report = r.json()["report"]
    assert [x["status"] for x in report["runs"]] == ["cancelled", "cancelled"]
    assert report["variants"]["simloss"]["differences"]["accuracy"]["diff"] is None
    listed = svc.client.get("/v1/comparisons?status=cancelled", headers=svc.auth_a).json()["items"]
    assert [c["id"] for c in listed] == [comp_id]
    page = svc.client.get(f"/v1/comparisons/{comp_id}/report", headers=svc.auth_a)
    assert page.status_code == 200 and comp_id in page.text
    jobs = svc.client.get("/v1/jobs", headers=svc.auth_a).json()["items"]
    assert {j["status"] for j in jobs} == {"cancelled"}


def test_similarity_preview_json_and_png(embedded):
    from PIL import Image

    svc = embedded
    req = {"classes": ["a", "b", "c", "d"], "similarity": {"kind": "ordinal", "reduction_factor": 0.5}}
    r = svc.client.post("/v1/similarity/preview", json=req, headers=svc.auth_a)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["classes"] == req["classes"] and out["values"] == [0.0, 1.0, 2.0, 3.0]
    assert out["matrix"][0] == pytest.approx([1.0, 0.5, 0.25, 0.125]) and out["groups"] is None
    groups = {
        "classes": ["cat", "dog", "car"],
        "similarity": {"kind": "groups", "groups": [["cat", "dog"]], "within": 0.7},
    }
    g = svc.client.post("/v1/similarity/preview", json=groups, headers=svc.auth_a).json()
    assert g["matrix"][0] == pytest.approx([1.0, 0.7, 0.0]) and g["groups"] == [0, 0, 1]

    pngs = [
        svc.client.post("/v1/similarity/preview.png", json=req, headers=svc.auth_a),
        svc.client.post("/v1/similarity/preview?format=png", json=req, headers=svc.auth_a),
        svc.client.get(
            "/v1/similarity/preview.png",
            params={"classes": "a,b,c,d", "similarity": '{"kind":"ordinal"}'},
            headers=svc.auth_a,
        ),
        svc.client.get(
            "/v1/similarity/preview",
            params={"classes": ["a", "b"], "similarity": '{"kind":"identity"}', "format": "png"},
            headers=svc.auth_a,
        ),
    ]
    for r in pngs:
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        img = Image.open(io.BytesIO(r.content))
        assert img.format == "PNG" and img.size[0] > 200
    r = svc.client.get(
        "/v1/similarity/preview",
        params={"classes": "a,b", "similarity": '{"kind":"identity"}'},
        headers=svc.auth_a,
    )
    assert r.json()["matrix"] == [[1.0, 0.0], [0.0, 1.0]]

    bad = {
        "classes": ["a", "b"],
        "similarity": {"kind": "matrix", "values": [[1, 0.5, 0], [0.5, 1, 0], [0, 0, 1]]},
    }
    assert _field(svc.client.post("/v1/similarity/preview", json=bad, headers=svc.auth_a)).startswith(
        "similarity"
    )
    assert _field(
        svc.client.post(
            "/v1/similarity/preview",
            json={"classes": ["a"], "similarity": {"kind": "nope"}},
            headers=svc.auth_a,
        )
    ).startswith("similarity")
    assert (
        _field(
            svc.client.get(
                "/v1/similarity/preview.png",
                params={"classes": "a,b", "similarity": "{nope"},
                headers=svc.auth_a,
            )
        )
        == "similarity"
    )
    assert svc.client.post("/v1/similarity/preview", json=req).status_code == 401
