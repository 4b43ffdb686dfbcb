"""The pieces of experiment tracking that need no MLflow server: the job spec's `tracking` field (a 422
naming the field through the real API), the tracking URI setting, and the flattening of specs and
metric records into MLflow params and metrics."""

from __future__ import annotations

import json

import pytest

from core.settings import Settings
from core.tracking.flatten import (
    MAX_KEY_LENGTH,
    MAX_PARAM_LENGTH,
    flat_params,
    mlflow_key,
    scalar_metrics,
)
from core.tracking.uri import check_tracking_uri

BODY = {"dataset": "builtin:digits", "training": {"epochs": 1}}


@pytest.mark.parametrize(
    ("tracking", "field"),
    [
        ({"mlflow": {"experiment": ""}}, "tracking.mlflow.experiment"),
        ({"mlflow": {"experiment": "   "}}, "tracking.mlflow.experiment"),
        ({"mlflow": {"experiment": "x" * 201}}, "tracking.mlflow.experiment"),
        ({"mlflow": {"run_name": "a\nb"}}, "tracking.mlflow.run_name"),
        ({"mlflow": {"run_name": 7}}, "tracking.mlflow.run_name"),
        ({"mlflow": {"exp": "x"}}, "tracking.mlflow.exp"),
        ({"wandb": {}}, "tracking.wandb"),
        ("mlflow", "tracking"),
    ],
)
def test_a_bad_tracking_field_is_a_422_naming_it(stack_factory, tracking, field):
    stack = stack_factory("sqlite")
    r = stack.client.post("/v1/jobs", json={**BODY, "tracking": tracking}, headers=stack.headers)
    assert r.status_code == 422, r.text
    assert field in {d["field"] for d in r.json()["error"]["details"]}, r.json()


def test_the_tracking_field_is_stored_with_the_spec(stack_factory):
    stack = stack_factory("sqlite")
    tracking = {"mlflow": {"experiment": " ordinal ", "run_name": "first try"}}
    job_id = stack.submit({**BODY, "tracking": tracking})
    assert stack.get(job_id)["spec"]["tracking"] == {
        "mlflow": {"experiment": "ordinal", "run_name": "first try"}
    }
    assert stack.get(stack.submit(BODY))["spec"].get("tracking") is None


def test_the_tracking_uri_setting():
    assert Settings(mlflow_tracking_uri="").mlflow_tracking_uri == ""
    assert (
        Settings(mlflow_tracking_uri=" https://mlflow.example/ ").mlflow_tracking_uri
        == "https://mlflow.example"
    )
    assert check_tracking_uri("sqlite:///tmp/mlflow.db") == "sqlite:///tmp/mlflow.db"
    assert check_tracking_uri("postgresql+psycopg://db/mlflow") == "postgresql+psycopg://db/mlflow"
    assert check_tracking_uri("databricks") == "databricks"
    for bad in (
        "mlflow:5000",
        "ftp://host",
        "http://user:secret@host",
        "http://",
        "http://h:70000",
        "http://a b",
    ):
        with pytest.raises(ValueError, match="mlflow_tracking_uri"):
            Settings(mlflow_tracking_uri=bad)


def test_a_spec_flattens_to_dotted_params_within_mlflows_limits():
    matrix = [[1.0 if i == j else 0.5 for j in range(200)] for i in range(200)]
    spec = {
        "loss": {"kind": "simloss", "reduction_factor": 0.3},
        "similarity": {"kind": "matrix", "matrix": matrix},
        "model": {"hidden": [32, 16], "init": None},
        "training": {"epochs": 3, "augment": {}},
        "metadata": {"team/name?": "vision", "tuning": {"study": "s1", "trial": 2}},
        "flag": True,
    }
    params = flat_params(spec)
    assert params["loss.kind"] == "simloss" and params["loss.reduction_factor"] == "0.3"
    assert params["model.hidden"] == "[32,16]" and params["model.init"] == "null"
    assert params["training.epochs"] == "3" and params["training.augment"] == "{}"
    assert params["flag"] == "true" and params["metadata.tuning.trial"] == "2"
    assert params["metadata.team_name_"] == "vision"
    long = params["similarity.matrix"]
    assert len(long) == MAX_PARAM_LENGTH and long.endswith("...")
    assert json.dumps(matrix, separators=(",", ":")).startswith(long[:-3])
    assert len(flat_params({f"k{i}": i for i in range(50)}, limit=10)) == 10


def test_keys_keep_to_mlflows_characters_and_length():
    assert mlflow_key("val.macro_f1") == "val.macro_f1"
    assert mlflow_key("a/b\\c<d>") == "a_b_c_d_"
    assert mlflow_key("..hidden") == "_hidden"
    assert mlflow_key("") == "_"
    assert len(mlflow_key("x" * 1000)) == MAX_KEY_LENGTH


def test_metrics_are_the_finite_numeric_leaves():
    record = {
        "epoch": 2,
        "train": {"loss": 0.5, "accuracy": 0.8},
        "val": {"loss": float("nan"), "per_class_recall": [0.1, 0.2], "ok": True, "note": "x", "n": None},
        "lr": 0.01,
    }
    assert scalar_metrics(record) == {"epoch": 2.0, "train.loss": 0.5, "train.accuracy": 0.8, "lr": 0.01}
    assert scalar_metrics({"loss": 1}, prefix="final.") == {"final.loss": 1.0}
