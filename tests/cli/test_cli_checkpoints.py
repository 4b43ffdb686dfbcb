"""`simtrain checkpoints list` and `simtrain checkpoints download` against the real API on a real HTTP
server, for a job trained in this process by `worker.runner.run_job`.

.venv/bin/pytest -q tests/cli/test_cli_checkpoints.py
"""

from __future__ import annotations

import json

import torch
from cli_testlib import simtrain

from core.artifacts import load_model_from_artifacts

JOB = {
    "dataset": "builtin:digits",
    "loss": {"kind": "cross_entropy"},
    "model": {"kind": "linear"},
    "training": {"epochs": 3, "seed": 4, "batch_size": 200, "keep_checkpoints": {"best": 1, "last": 2}},
}


def test_checkpoints_list_and_download(live, tmp_path):
    from worker.runner import RunOutcome, run_job

    url, svc = live
    job_id = svc.create_job(JOB)["id"]
    assert run_job(job_id, settings=svc.settings, resend=lambda _id: None) == RunOutcome.succeeded
    listed = svc.client.get(f"/v1/jobs/{job_id}/checkpoints", headers=svc.auth_a).json()
    epochs = [item["epoch"] for item in listed["items"]]
    assert epochs[:2] == [3, 2], epochs

    as_json = simtrain(["checkpoints", "list", job_id, "--json"], url=url, key=svc.key_a)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == listed

    table = simtrain(["checkpoints", "list", job_id], url=url, key=svc.key_a, columns=120)
    assert table.exit_code == 0, table.output
    rows = [line.split() for line in table.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(row[0]) for row in rows] == epochs
    for row, item in zip(rows, listed["items"], strict=True):
        assert row[1] == str(item["step"]) and row[2] == f"{item['metrics']['val_loss']:.4f}"
        assert ", ".join(item["kept_as"]) in " ".join(row)

    out = tmp_path / "ckpt-2"
    got = simtrain(["checkpoints", "download", job_id, "2", "-o", str(out)], url=url, key=svc.key_a)
    assert got.exit_code == 0, got.output
    assert got.stdout.split() == [str(out / "model.safetensors"), str(out / "model.json")]
    for name in ("model.safetensors", "model.json"):
        served = svc.client.get(f"/v1/jobs/{job_id}/checkpoints/2/{name}", headers=svc.auth_a).content
        assert (out / name).read_bytes() == served, name
    model, described = load_model_from_artifacts(out)  # rebuilds like a job's final model
    assert described["checkpoint"]["epoch"] == 2
    x = torch.zeros(2, 64)
    assert model(x).shape == (2, 10)

    missing = ["checkpoints", "download", job_id, "1", "-o", str(tmp_path / "x")]
    gone = simtrain(missing, url=url, key=svc.key_a)
    assert gone.exit_code == 1 and gone.stdout == ""
    assert "404" in gone.stderr and "keeps no checkpoint of epoch 1" in gone.stderr, gone.stderr
    assert not (tmp_path / "x" / "model.safetensors").exists()
    other = simtrain(["checkpoints", "list", job_id], url=url, key=svc.key_b)
    assert other.exit_code == 1 and "404" in other.stderr, other.output
