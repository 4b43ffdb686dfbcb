"""`POST /v1/tuning` refuses what it cannot run with a 422 naming the field and stores nothing; `parallel`
beyond the free active-job places is a 429 saying how many fit; another tenant's study is a 404; the
Idempotency-Key replays. The app on the embedded default (no worker: nothing here needs a trial to run)."""

from __future__ import annotations

from sqlalchemy import func, select

from core.db.models import Job, TuningStudy


def _count(svc, model) -> int:
    with svc.sessionmaker() as s:
        return s.execute(select(func.count()).select_from(model)).scalar_one()


def _post(svc, body, key=None, **headers):
    auth = {"Authorization": f"Bearer {key or svc.key_a}", **headers}
    return svc.client.post("/v1/tuning", json=body, headers=auth)


BAD = [
    ("unknown path", {"search_space": {"training.nonsense": {"type": "float", "low": 0, "high": 1}}},
     "search_space.training.nonsense"),
    ("path into an absent similarity", {"search_space": {"similarity.reduction_factor":
     {"type": "float", "low": 0.1, "high": 0.9}}}, "search_space.similarity.reduction_factor"),
    ("a value that makes an invalid job", {"search_space": {"training.learning_rate":
     {"type": "float", "low": -1.0, "high": 0.1}}}, "search_space.training.learning_rate"),
    ("a choice that makes an invalid job", {"search_space": {"training.batch_size":
     {"type": "categorical", "choices": [64, 0]}}}, "search_space.training.batch_size"),
    ("epochs over the server's bound", {"search_space": {"training.epochs":
     {"type": "int", "low": 1, "high": 10**6}}}, "search_space.training.epochs"),
    ("the dataset is not searchable", {"search_space": {"dataset":
     {"type": "categorical", "choices": ["builtin:digits"]}}}, "search_space.dataset"),
    ("objective metric not reported", {"objective": {"metric": "amae"}}, "objective.metric"),
    ("constraint metric not reported", {"objective": {"metric": "accuracy",
     "constraint": {"metric": "quadratic_weighted_kappa", "min": 0.5}}}, "objective.constraint.metric"),
    ("trials over the bound", {"trials": 201}, "trials"),
    ("parallel over the bound", {"parallel": 17}, "parallel"),
    ("unknown sampler", {"sampler": "grid"}, "sampler"),
    ("unknown pruner", {"pruner": "hyperband"}, "pruner"),
    ("low above high", {"search_space": {"training.learning_rate":
     {"type": "float", "low": 0.5, "high": 0.1}}}, "search_space.training.learning_rate"),
    ("log scale from zero", {"search_space": {"training.learning_rate":
     {"type": "float", "low": 0.0, "high": 0.1, "log": True}}}, "search_space.training.learning_rate"),
    ("empty search space", {"search_space": {}}, "search_space"),
]  # fmt: skip


def test_bad_input_is_a_422_naming_the_field_and_stores_nothing(embedded, tuning_body):
    for what, changes, field in BAD:  # one app for all: each case is a request
        r = _post(embedded, tuning_body(**changes))
        assert r.status_code == 422, (what, r.text)
        fields = [d["field"] for d in r.json()["error"]["details"]]
        assert any(f == field or f.startswith(field + ".") for f in fields), (what, r.json())
        assert _count(embedded, TuningStudy) == 0 and _count(embedded, Job) == 0, what


def test_an_ordinal_study_may_optimise_an_ordinal_metric_under_a_floor(embedded, tuning_body):
    body = tuning_body(
        similarity={"kind": "ordinal", "reduction_factor": 0.5},
        loss={"kind": "simloss"},
        search_space={"similarity.reduction_factor": {"type": "float", "low": 0.1, "high": 0.9}},
        objective={
            "metric": "amae",
            "direction": "minimize",
            "constraint": {"metric": "accuracy", "min": 0.5},
        },
    )
    r = _post(embedded, body)
    assert r.status_code == 201, r.text
    study = r.json()
    assert study["status"] == "running" and study["objective"]["constraint"] == {
        "metric": "accuracy",
        "min": 0.5,
    }
    assert study["progress"]["trials"] == 4 and study["trials"] == []
    assert study["report_url"] == f"/v1/tuning/{study['id']}/report"


def test_parallel_must_fit_the_tenants_free_places(make_service, tuning_body):
    svc = make_service("sqlite", max_active_jobs_per_tenant=3)
    r = _post(svc, tuning_body(parallel=4))
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "parallel", r.text
    svc.create_job()  # one active job: two places left
    r = _post(svc, tuning_body(parallel=3))
    assert r.status_code == 429, r.text
    assert "2 trials fit now" in r.json()["error"]["message"]
    assert r.json()["error"]["details"]["fit"] == 2
    assert _count(svc, TuningStudy) == 0
    assert _post(svc, tuning_body(parallel=2)).status_code == 201


def test_tenant_isolation_list_and_idempotency(embedded, tuning_body):
    svc = embedded
    key = {"Idempotency-Key": "study-1"}
    first = _post(svc, tuning_body(), **key)
    assert first.status_code == 201, first.text
    again = _post(svc, tuning_body(), **key)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert _post(svc, tuning_body(trials=5), **key).status_code == 409
    sid = first.json()["id"]
    b = {"Authorization": f"Bearer {svc.key_b}"}
    for method, path in (("get", f"/v1/tuning/{sid}"), ("post", f"/v1/tuning/{sid}/cancel"),
                         ("get", f"/v1/tuning/{sid}/report")):  # fmt: skip
        assert getattr(svc.client, method)(path, headers=b).status_code == 404, path
    assert svc.client.get("/v1/tuning", headers=b).json()["items"] == []
    mine = svc.client.get("/v1/tuning", headers=svc.auth_a).json()["items"]
    assert [s["id"] for s in mine] == [sid]
    assert svc.client.get("/v1/tuning?status=running", headers=svc.auth_a).json()["items"][0]["id"] == sid
    assert svc.client.get("/v1/tuning?status=succeeded", headers=svc.auth_a).json()["items"] == []


def test_the_cli_names_a_bad_option_before_sending_anything():
    from typer.testing import CliRunner

    from cli.app import app

    base = ["tune", "--api-key", "k", "--url", "http://127.0.0.1:9", "--dataset", "builtin:digits"]
    cases = [
        ([], "--param"),
        (["--param", "training.learning_rate"], "--param"),
        (["--param", "training.learning_rate={oops"], "--param training.learning_rate is not valid JSON"),
        (["--param", 'x={"type":"int","low":1,"high":2}', "--constraint", "accuracy>0.5"], "--constraint"),
    ]
    for extra, text in cases:
        result = CliRunner().invoke(app, base + extra)
        assert result.exit_code == 1 and text in result.output, (extra, result.output)
