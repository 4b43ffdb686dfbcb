"""The `simtrain` commands against the real API on a real HTTP server: in-process through typer's
CliRunner, and as the installed console script in a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from cli_testlib import play_worker, simtrain, simtrain_process

from tests.specs import SIMLOSS_JOB

SUBMIT = [
    "submit", "--dataset", "builtin:digits", "--classes", "0,1,2", "--similarity", '{"kind":"ordinal"}',
    "--loss", '{"kind":"simloss"}', "--model", '{"kind":"linear"}', "--epochs", "2",
]  # fmt: skip
COMMANDS = ("dev", "serve", "migrate", "worker", "keys", "submit", "status", "download", "cancel", "compare",
            "jobs", "datasets")  # fmt: skip


def test_help_and_shell_completion_of_the_console_script():
    proc = simtrain_process(["--help"])
    assert proc.returncode == 0, proc.stderr
    for command in COMMANDS:
        assert f" {command} " in proc.stdout, command
    assert "--install-completion" in proc.stdout
    compare_help = simtrain_process(["compare", "--help"])
    for option in ("--variant", "--seeds", "--watch", "--no-wait", "--interval", "--timeout", "--report",
                   "--json", "--idempotency-key", "--training", "--url", "--api-key"):  # fmt: skip
        assert option in compare_help.stdout, option
    env = {**os.environ, "_SIMTRAIN_COMPLETE": "complete_bash", "COMP_WORDS": "simtrain sta",
           "COMP_CWORD": "1"}  # fmt: skip
    script = Path(sys.executable).parent / "simtrain"
    done = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.split() == ["status"]


def test_submit_wait_shows_the_epochs_and_exits_0_when_the_job_succeeds(live):
    url, svc = live
    worker = play_worker(svc, epochs=2, accuracy=0.9)
    result = simtrain([*SUBMIT, "--wait"], url=url, key=svc.key_a)
    worker.join(10)
    assert result.exit_code == 0, result.output
    job_id = result.stdout.splitlines()[0].strip()
    assert f"job {job_id}: succeeded" in result.stdout
    assert "accuracy: 0.9" in result.stdout
    assert "epoch 1/2" in result.stderr and "epoch 2/2" in result.stderr
    assert "accuracy=0.9" in result.stderr and "[succeeded]" in result.stderr


def test_status_json_jobs_list_and_cancel(live):
    url, svc = live
    job_id = simtrain(SUBMIT, url=url, key=svc.key_a).stdout.strip()

    result = simtrain(["status", job_id, "--json"], url=url, key=svc.key_a)
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout)
    assert job["id"] == job_id and job["status"] == "queued" and job["progress"]["epochs"] == 2

    proc = simtrain_process(["status", job_id, "--json", "--url", url, "--api-key", svc.key_a])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == job_id

    page = json.loads(simtrain(["jobs", "list", "--json"], url=url, key=svc.key_a).stdout)
    assert [j["id"] for j in page["items"]] == [job_id] and page["next_cursor"] is None
    table = simtrain(["jobs", "list", "--status", "queued"], url=url, key=svc.key_a, columns=100).stdout
    assert job_id in table and all(len(row) <= 100 for row in table.splitlines())

    assert simtrain(["pause", job_id], url=url, key=svc.key_a).stdout.strip() == f"job {job_id}: paused"
    assert simtrain(["resume", job_id], url=url, key=svc.key_a).stdout.strip() == f"job {job_id}: queued"
    assert simtrain(["cancel", job_id], url=url, key=svc.key_a).stdout.strip() == f"job {job_id}: cancelled"
    ended = simtrain(["pause", job_id], url=url, key=svc.key_a)
    assert ended.exit_code == 1 and "409" in ended.stderr
    again = simtrain(["cancel", job_id], url=url, key=svc.key_a)
    assert again.exit_code == 1
    assert again.stderr.strip() == f"simtrain: 409 conflict: job {job_id} is already cancelled"


def test_datasets_upload_and_list(live, tmp_path):
    url, svc = live
    path = tmp_path / "two.npz"
    buf = io.BytesIO()
    np.savez(buf, x=np.arange(24, dtype=np.float32).reshape(12, 2), y=np.arange(12) % 2)
    path.write_bytes(buf.getvalue())

    result = simtrain(["datasets", "upload", str(path), "--name", "two"], url=url, key=svc.key_a)
    assert result.exit_code == 0, result.output
    ds_id = result.stdout.strip()
    assert "dataset two: 12 samples, 2 classes (npz)" in result.stderr

    page = json.loads(simtrain(["datasets", "list", "--json"], url=url, key=svc.key_a).stdout)
    assert [d["id"] for d in page["items"]] == [ds_id]
    table = simtrain(["datasets", "list"], url=url, key=svc.key_a).stdout
    assert ds_id in table and "two" in table
    builtin = simtrain(["datasets", "list", "--builtin"], url=url, key=svc.key_a).stdout
    assert "builtin:digits" in builtin
    again = simtrain(["datasets", "upload", str(path)], url=url, key=svc.key_a, env={"FORCE_COLOR": "1"})
    assert again.exit_code == 0 and again.stdout.strip() == ds_id  # the same bytes: the same dataset
    assert "uploading two.npz" in again.stderr  # the bar of the bytes sent, drawn on a terminal
    missing = simtrain(["datasets", "upload", str(tmp_path / "none.npz")], url=url, key=svc.key_a)
    assert missing.exit_code == 2  # a usage error: the file does not exist


def test_an_error_answer_is_one_red_line_naming_the_field(live):
    url, svc = live
    bad_loss = simtrain(["submit", "--dataset", "builtin:digits", "--loss", '{"kind":"nope"}'],
                        url=url, key=svc.key_a)  # fmt: skip
    assert bad_loss.exit_code == 1 and bad_loss.stdout == ""
    [line] = bad_loss.stderr.strip().splitlines()
    assert line.startswith("simtrain: 422 invalid_input: loss.kind")

    epochs = simtrain([*SUBMIT[:-1], "0"], url=url, key=svc.key_a)
    assert epochs.exit_code == 1 and "training.epochs" in epochs.stderr
    assert len(epochs.stderr.strip().splitlines()) == 1

    first = simtrain([*SUBMIT, "--idempotency-key", "k1"], url=url, key=svc.key_a)
    assert first.exit_code == 0
    reused = simtrain([*SUBMIT[:-1], "1", "--idempotency-key", "k1"], url=url, key=svc.key_a)
    assert reused.exit_code == 1 and "Idempotency-Key" in reused.stderr

    red = simtrain(["status", "nope"], url=url, key=svc.key_a, env={"FORCE_COLOR": "1"})
    assert red.exit_code == 1
    assert red.stderr.startswith("\x1b[1;31msimtrain: 404 not_found: job 'nope' not found")
    assert len(red.stderr.strip().splitlines()) == 1

    wrong_key = simtrain(["jobs", "list"], url=url, key="st_wrong")
    assert wrong_key.exit_code == 1 and wrong_key.stderr.startswith("simtrain: 401 unauthorized")
    no_key = simtrain(["status", "x"], url=url)
    assert no_key.exit_code == 1
    assert no_key.stderr.strip() == "simtrain: no API key: pass --api-key or set SIMTRAIN_API_KEY"


def test_download_streams_an_artifact(live, tmp_path, trained_artifacts, finish_with_artifacts):
    url, svc = live
    job = svc.create_job(SIMLOSS_JOB)
    finish_with_artifacts(svc, job["id"], trained_artifacts)
    out = tmp_path / "m" / "model.json"
    result = simtrain(["download", job["id"], "model.json", "-o", str(out)], url=url, key=svc.key_a)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    assert out.read_bytes() == (trained_artifacts["dir"] / "model.json").read_bytes()
    missing = simtrain(["download", job["id"], "nope.bin"], url=url, key=svc.key_a)
    assert missing.exit_code == 1 and "404 not_found" in missing.stderr
