"""The Python client and the `simtrain` CLI against a real HTTP server (uvicorn in a thread).

More of the CLI (typer's CliRunner, subprocesses, tables, retries): tests/cli/."""

from __future__ import annotations

import io

import numpy as np
import pytest

from cli import app as cli
from cli.processes import worker_command
from core.client import ApiError, SimtrainClient
from tests.live_server import live_server
from tests.specs import SIMLOSS_JOB

JOB = SIMLOSS_JOB


@pytest.fixture
def server(embedded):
    with live_server(embedded.app) as url:
        yield url, embedded


def test_client_round_trip(server, tmp_path, trained_artifacts, finish_with_artifacts):
    url, svc = server
    with SimtrainClient(url, svc.key_a) as client:
        assert client.health()["status"] == "ok"
        assert client.ready()["checks"]["database"] == "ok"
        assert any(d["ref"] == "builtin:digits" for d in client.builtin_datasets())

        path = tmp_path / "d.npz"
        buf = io.BytesIO()
        np.savez(buf, x=np.arange(24, dtype=np.float32).reshape(12, 2), y=np.arange(12) % 2)
        path.write_bytes(buf.getvalue())
        ds = client.upload_dataset(path, name="two")
        assert ds["name"] == "two" and ds["classes"] == ["0", "1"]
        assert [d["id"] for d in client.list_datasets()] == [ds["id"]]

        job = client.create_job(JOB, idempotency_key="k1")
        assert client.create_job(JOB, idempotency_key="k1")["id"] == job["id"]
        with pytest.raises(ApiError) as err:
            client.create_job({**JOB, "loss": {"kind": "nope"}})
        assert err.value.status == 422 and err.value.code == "invalid_input"
        assert err.value.details[0]["field"] == "loss.kind"

        other = client.create_job({**JOB, "training": {"epochs": 1}})
        assert [j["id"] for j in client.iter_jobs(page_size=1)] == [other["id"], job["id"]]
        assert client.list_jobs(status="queued")["items"][0]["id"] == other["id"]
        assert client.cancel(other["id"])["status"] == "cancelled"
        assert client.wait(other["id"], timeout=5)["status"] == "cancelled"
        streamed = list(client.stream_events(other["id"]))
        assert [e["data"]["status"] for e in streamed] == ["queued", "cancelled"]
        assert client.events(other["id"], after=streamed[0]["id"])[0]["id"] == streamed[1]["id"]

        finish_with_artifacts(svc, job["id"], trained_artifacts)
        assert client.wait(job["id"], timeout=5)["status"] == "succeeded"
        assert client.metrics(job["id"])["final"]["accuracy"] > 0
        names = [a["name"] for a in client.list_artifacts(job["id"])]
        assert "model.onnx" in names
        out = client.download_artifact(job["id"], "model.json", tmp_path / "out" / "model.json")
        assert out.read_bytes() == (trained_artifacts["dir"] / "model.json").read_bytes()
        pred = client.predict(job["id"], trained_artifacts["dataset"].x[:2].tolist())
        assert len(pred["predictions"]) == 2

        with pytest.raises(ApiError) as err:
            client.get_job("00000000-0000-4000-8000-000000000000")
        assert err.value.status == 404
    with SimtrainClient(url, "st_wrong") as bad, pytest.raises(ApiError) as err:
        bad.list_jobs()
    assert err.value.status == 401


def test_cli_commands(server, tmp_path, capsys, monkeypatch, trained_artifacts, finish_with_artifacts):
    url, svc = server
    base = ["--url", url, "--api-key", svc.key_a]

    assert cli.main(["migrate"]) == 0
    assert cli.main(["keys", "create", "--tenant", "cli-tenant"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("st_")
    with SimtrainClient(url, key) as c:
        assert c.list_jobs()["items"] == []
    assert cli.main(["keys", "revoke", key]) == 0
    assert cli.main(["keys", "revoke", "st_unknown"]) == 1

    assert cli.main(["submit", *base, "--dataset", "builtin:digits", "--classes", "0,1,2",
                     "--similarity", '{"kind":"ordinal"}', "--loss", '{"kind":"simloss"}',
                     "--model", '{"kind":"linear"}', "--epochs", "2"]) == 0  # fmt: skip
    job_id = capsys.readouterr().out.strip().splitlines()[-1]
    with SimtrainClient(url, svc.key_a) as c:
        job = c.get_job(job_id)
    assert job["spec"]["training"]["epochs"] == 2 and job["spec"]["loss"] == {"kind": "simloss"}

    assert cli.main(["status", *base, job_id]) == 0
    assert f"job {job_id}: queued epoch 0/2" in capsys.readouterr().out

    finish_with_artifacts(svc, job_id, trained_artifacts)
    assert cli.main(["status", *base, job_id, "--follow"]) == 0
    captured = capsys.readouterr()
    assert f"job {job_id}: succeeded" in captured.out
    out = tmp_path / "model.onnx"
    assert cli.main(["download", *base, job_id, "model.onnx", "-o", str(out)]) == 0
    assert out.read_bytes() == (trained_artifacts["dir"] / "model.onnx").read_bytes()

    assert cli.main(["submit", *base, "--dataset", "builtin:digits", "--loss", '{"kind":"nope"}']) == 1
    assert "loss.kind" in capsys.readouterr().err
    monkeypatch.delenv("SIMTRAIN_API_KEY", raising=False)
    assert cli.main(["status", "--url", url, "--api-key", "", job_id]) == 1
    assert "no API key" in capsys.readouterr().err


def test_worker_command_and_dev_arguments():
    import typer

    cmd = worker_command("simtrain", 2)
    assert cmd[1:] == ["-m", "celery", "-A", "worker.app:celery_app", "worker", "-Q", "simtrain", "-c", "2",
                       "--loglevel", "INFO"]  # fmt: skip
    group = typer.main.get_command(cli.app)
    parent = group.make_context("simtrain", ["dev"], resilient_parsing=True)
    dev = group.get_command(parent, "dev")
    args = dev.make_context("dev", ["--port", "8123", "--home", "/tmp/x"], parent=parent)
    assert args.params["port"] == 8123 and args.params["home"] == "/tmp/x"


def test_api_never_imports_worker():
    import ast
    from pathlib import Path

    import api

    for path in Path(api.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(n == "worker" or n.startswith("worker.") for n in names), path
