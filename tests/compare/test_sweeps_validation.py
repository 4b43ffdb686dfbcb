"""`POST /v1/comparisons` with variant overrides and a sweep (no worker): the children it stores, and the
bad requests (a path the job schema lacks, values that make an invalid job, a grid over the bound, more
children than the tenant may have active) answered 4xx naming the field, with nothing stored."""

from __future__ import annotations

SIM = {"kind": "ordinal", "reduction_factor": 0.5}
R = {"name": "r", "path": "similarity.reduction_factor", "values": [0.2, 0.8]}


def body(**over):
    b = {
        "dataset": "builtin:digits",
        "similarity": SIM,
        "model": {"kind": "mlp", "hidden": [16]},
        "training": {"epochs": 1, "seed": 3},
        "variants": [{"name": "simloss", "loss": {"kind": "simloss"}}],
        "seeds": 2,
        "sweep": [R],
    }
    b.update(over)
    return b


def _error(r) -> tuple[str, str]:
    assert r.status_code == 422, r.text
    detail = r.json()["error"]["details"][0]
    return detail["field"], r.json()["error"]["message"]


def _nothing_stored(svc) -> None:
    assert svc.client.get("/v1/jobs", headers=svc.auth_a).json()["items"] == []
    assert svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"] == []
    assert svc.queued_messages() == 0


def test_bad_sweeps_and_overrides_name_the_field_and_store_nothing(make_service):
    svc = make_service("sqlite", max_active_jobs_per_tenant=6, max_epochs=5)
    post = lambda b: svc.client.post("/v1/comparisons", json=b, headers=svc.auth_a)
    # a path that does not exist in the job schema
    field, message = _error(post(body(sweep=[{**R, "path": "similarity.reduction_facter"}])))
    assert field == "sweep.0.path" and "not a field of the job schema" in message
    assert _error(post(body(sweep=[{**R, "path": "training.seed"}])))[0] == "sweep.0.path"
    # a path the variant's job lacks (its own similarity has no reduction factor)
    groups = {"kind": "groups", "groups": [["0", "1"]], "within": 0.5}
    v = [{"name": "g", "loss": {"kind": "simloss"}, "similarity": groups}]
    assert _error(post(body(variants=v)))[0] == "sweep.0.path"
    # values that make an invalid job: pydantic's bounds, and the dataset's (validate_job)
    field, message = _error(post(body(sweep=[{**R, "values": [0.2, 1.5]}])))
    assert field == "sweep.0.values.1" and "similarity.reduction_factor = 1.5" in message
    epochs = {"name": "e", "path": "training.epochs", "values": [1, 10]}  # the service allows 5
    field, message = _error(post(body(sweep=[epochs])))
    assert field == "sweep.0.values.1" and "training.epochs = 10" in message and "at most 5" in message
    # a grid over the bound: (1 + 2 variants x 60 points) x 2 seeds > 200 children
    big = {**R, "values": [i / 100 for i in range(60)]}
    two = [{"name": "a", "loss": {"kind": "simloss"}}, {"name": "b", "loss": {"kind": "soft_labels"}}]
    field, message = _error(post(body(sweep=[big], variants=two)))
    assert field == "sweep" and "at most 200" in message
    # the variants' overrides are validated as full jobs, named as the variant's fields
    bad_lr = [{"name": "v", "loss": {"kind": "simloss"}, "training": {"learning_rate": -1}}]
    assert _error(post(body(variants=bad_lr, sweep=None)))[0] == "variants.0.training.learning_rate"
    wide = [{"name": "v", "loss": {"kind": "simloss"}, "model": {"kind": "mlp", "hidden": [0]}}]
    assert _error(post(body(variants=wide, sweep=None)))[0].startswith("variants.0.model.hidden")
    bad_sim = [{"name": "v", "loss": {"kind": "simloss"},
                "similarity": {"kind": "matrix", "values": [[1, 0], [0, 1]]}}]  # fmt: skip
    assert _error(post(body(variants=bad_sim, sweep=None)))[0].startswith("variants.0.similarity")
    # more children than the tenant may ever have active: 422; more than fit now: 429 saying how many fit
    assert _error(post(body(seeds=3)))[0] == "sweep"  # 3 arms x 3 seeds = 9 > 6
    _nothing_stored(svc)
    svc.create_job({"dataset": "builtin:digits", "training": {"epochs": 1}})
    r = post(body())  # 3 arms x 2 seeds = 6; 1 active + 6 > 6
    assert r.status_code == 429 and r.headers["retry-after"] == "30", r.text
    err = r.json()["error"]
    assert "5 would fit now" in err["message"] and "2 seeds" not in err["message"]
    assert err["details"] == {"active": 1, "requested": 6, "limit": 6, "would_fit": 5, "seeds_that_fit": 1}
    assert len(svc.client.get("/v1/jobs", headers=svc.auth_a).json()["items"]) == 1
    assert svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"] == []


def test_a_sweep_stores_one_child_per_variant_grid_point_and_seed(service):
    """On SQLite and PostgreSQL."""
    svc = service
    lr = {"name": "lr", "path": "training.learning_rate", "values": [0.01, 0.001]}
    variants = [
        {"name": "simloss", "loss": {"kind": "simloss"}, "training": {"batch_size": 32}},
        {"name": "soft", "loss": {"kind": "soft_labels"}, "swept": False},
    ]
    r = svc.client.post("/v1/comparisons", json=body(variants=variants, sweep=[R, lr]), headers=svc.auth_a)
    assert r.status_code == 201, r.text
    comp = r.json()
    names = ["baseline", "simloss@r=0.2,lr=0.01", "simloss@r=0.2,lr=0.001", "simloss@r=0.8,lr=0.01",
             "simloss@r=0.8,lr=0.001", "soft"]  # fmt: skip
    assert [v["name"] for v in comp["variants"]] == names
    assert (
        comp["variants"][1]["point"] == {"r": 0.2, "lr": 0.01} and comp["variants"][1]["variant"] == "simloss"
    )
    assert comp["variants"][1]["overrides"] == {"training": {"batch_size": 32}}
    assert comp["sweep"] == [R, lr] and comp["spec"]["sweep"] == [R, lr]
    assert len(comp["children"]) == 12 and comp["progress"]["total"] == 12
    jobs = {
        k["job_id"]: svc.client.get(f"/v1/jobs/{k['job_id']}", headers=svc.auth_a).json()
        for k in comp["children"]
    }
    for kid in comp["children"]:
        spec = jobs[kid["job_id"]]["spec"]
        assert spec["training"]["seed"] == kid["seed"] and spec["metadata"]["variant"] == kid["variant"]
        entry = next(v for v in comp["variants"] if v["name"] == kid["variant"])
        point = entry["point"] or {}
        assert spec["similarity"]["reduction_factor"] == point.get("r", 0.5)
        assert spec["training"]["learning_rate"] == point.get("lr", 0.001)
        assert spec["training"]["batch_size"] == (32 if entry["variant"] == "simloss" else 64)
        assert (
            spec["loss"]["kind"]
            == {"baseline": "cross_entropy", "simloss": "simloss", "soft": "soft_labels"}[entry["variant"]]
        )
    assert {k["seed"] for k in comp["children"]} == {3, 4}
    listed = svc.client.get("/v1/comparisons", headers=svc.auth_a).json()["items"][0]
    assert listed["sweep"] == [R, lr] and len(listed["variants"]) == 6
    cancel = svc.client.post(f"/v1/comparisons/{comp['id']}/cancel", headers=svc.auth_a)
    assert cancel.status_code == 202 and cancel.json()["status"] == "cancelled"
    report = cancel.json()["report"]  # every child cancelled: the sweep block is there, without numbers
    assert report["sweep"]["axes"] == [R, lr]
    rows = report["sweep"]["tables"]["accuracy"]
    assert [row["name"] for row in rows] == names[1:5] and all(
        row["n"] == 0 and row["mean"] is None for row in rows
    )
