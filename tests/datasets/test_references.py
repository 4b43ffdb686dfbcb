"""Datasets given by URI, end to end: the real API, real `celery worker` processes, a local HTTP and HTTPS
server on 127.0.0.1 (opened by `SIMTRAIN_FETCH_ALLOW=127.0.0.1/32`; the worker trusts the test CA) and
moto's S3 server in its own process. Imports end `ready` (and jobs train on them) or `failed` naming the
field; jobs naming a URI or an importing dataset wait for it, for a bounded time; a reference whose task
was lost is re-sent by the reconciler; nothing is left in the scratch directory or the storage."""

from __future__ import annotations

import json
import os
import time
import uuid

from refservers import TRUST_DIR
from reftestlib import (
    CLASSES,
    SMALL_JOB,
    leftover_scratch,
    npz_bytes,
    parquet_bytes,
    register,
    sha256_of,
    wait_dataset,
    zip_bytes,
)
from worker_testlib import FAST_FAULTS

from tests.s3server import make_bucket

ALLOW = {"fetch_allow": "127.0.0.1/32"}


def _tenant(stack) -> str:
    from core.auth import resolve_api_key

    with stack.session() as s:
        return resolve_api_key(s, stack.headers["Authorization"].split()[1])


def _register_unsent(stack, uri: str) -> str:
    """A reference registered with its import task sent to a queue no worker reads (a lost message)."""
    from core.dataset_import import DatasetReference, register_reference

    nowhere = stack.settings.model_copy(update={"queue": f"nobody-{uuid.uuid4().hex[:6]}"})
    with stack.session() as s:
        row, queued = register_reference(s, nowhere, _tenant(stack), DatasetReference(uri))
    assert queued
    return row.id


def _stored(stack, tenant: str, dataset_id: str) -> list[str]:
    from core.storage import make_storage

    return make_storage(stack.settings.storage_url).list(f"datasets/{tenant}/{dataset_id}/")


def _webhook_events(server, want: dict[str, set[str]], timeout: float = 60.0) -> dict[str, set[str]]:
    """{event type: dataset ids} of the webhook deliveries received, once those in `want` all came."""
    deadline = time.monotonic() + timeout
    while True:
        seen: dict[str, set[str]] = {}
        for path, body in list(server.posts):
            if path == "/hook":
                event = json.loads(body)
                seen.setdefault(event["type"], set()).add(event["data"]["id"])
        if all(ids <= seen.get(kind, set()) for kind, ids in want.items()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_http_and_https_imports_end_ready_or_failed_with_the_reason(
    stack_factory, http_files, https_files, tls
):
    stack = stack_factory("postgres", fetch_max_bytes=200_000, **ALLOW, **FAST_FAULTS)
    stack.env.update(
        {
            "PYTHONPATH": f"{TRUST_DIR}{os.pathsep}{stack.env['PYTHONPATH']}",
            "SIMTRAIN_TEST_CA_BUNDLE": str(tls.bundle),
        }
    )
    stack.start_worker()
    c, h, tenant = stack.client, stack.headers, _tenant(stack)
    hook = c.post("/v1/webhooks", json={"url": http_files.base + "/hook", "events": ["dataset.*"]}, headers=h)
    assert hook.status_code == 201, hook.text
    table = npz_bytes()
    answers = {
        "npz": register(c, h, http_files.serve("/data/table.npz", table), sha256=sha256_of(table)),
        "zip": register(c, h, https_files.serve("/images/flowers.zip", zip_bytes()), image_size=8),
        "sha": register(c, h, http_files.serve("/data/other.npz", npz_bytes(1)), sha256="0" * 64),
        "big": register(c, h, http_files.serve("/data/big.npz", npz_bytes(2, rows_per_class=2000))),
        "redirect": register(c, h, http_files.redirect("/data/moved.npz", "http://10.1.2.3/table.npz")),
    }
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 202)
    assert all(r.json()["status"] == "importing" for r in answers.values())
    ids = {k: r.json()["id"] for k, r in answers.items()}
    ids["lost"] = _register_unsent(stack, http_files.serve("/data/lost.npz", npz_bytes(4)))
    got = {k: wait_dataset(c, h, i) for k, i in ids.items()}

    npz, images = got["npz"], got["zip"]
    assert (npz["status"], npz["error"], npz["source_uri"]) == (
        "ready",
        None,
        http_files.base + "/data/table.npz",
    )
    assert (npz["num_samples"], npz["feature_shape"], sorted(npz["classes"])) == (60, [8], sorted(CLASSES))
    assert (npz["sha256"], npz["size_bytes"], npz["class_counts"]) == (sha256_of(table), len(table), [20] * 3)
    assert (images["status"], images["feature_shape"], images["dtype"]) == ("ready", [3, 8, 8], "uint8")
    assert images["preprocessing"]["kind"] == "image" and images["preprocessing"]["size"] == [8, 8]
    assert got["lost"]["status"] == "ready"  # its task never arrived: the worker's reconciler sent it again
    for key, field, words in [("sha", "sha256", "expected 000"), ("big", "uri", "200000-byte bound"),
                              ("redirect", "uri", "redirected to a refused URL")]:  # fmt: skip
        assert got[key]["status"] == "failed", got[key]
        assert got[key]["error"]["field"] == field and words in got[key]["error"]["message"], got[key]
        assert _stored(stack, tenant, ids[key]) == []
    assert sorted(_stored(stack, tenant, ids["npz"])) == sorted(
        f"datasets/{tenant}/{ids['npz']}/{name}" for name in ("x.npy", "y.npy", "meta.json")
    )
    assert "/data/moved.npz" in http_files.seen and "/table.npz" not in http_files.seen

    again = register(c, h, http_files.base + "/data/table.npz", sha256=sha256_of(table))
    assert again.status_code == 200 and again.json()["id"] == ids["npz"]
    job_id = stack.submit({"dataset": ids["npz"], **SMALL_JOB})
    assert stack.wait_status(job_id, "succeeded", "failed")["status"] == "succeeded", stack.get(job_id)
    want = {"dataset.ready": {ids[k] for k in ("npz", "zip", "lost")}}
    want["dataset.failed"] = {ids[k] for k in ("sha", "big", "redirect")}
    events = _webhook_events(http_files, want)
    assert all(want[kind] <= events.get(kind, set()) for kind in want), (events, want)
    assert leftover_scratch(stack.settings.home) == []


def test_jobs_wait_for_their_dataset_for_a_bounded_time(stack_factory, http_files):
    from core.queue import send_import

    faults = {**FAST_FAULTS, "requeue_after_seconds": 600}  # a lost import task stays lost here
    stack = stack_factory("sqlite", import_wait_s=6, **ALLOW, **faults)  # a broker of its own
    worker = stack.start_worker()
    url = http_files.serve("/direct.npz", npz_bytes(3))
    direct = stack.submit({"dataset": url, **SMALL_JOB})
    dataset_id = stack.get(direct)["dataset"]
    assert stack.get(stack.submit({"dataset": url, **SMALL_JOB}))["dataset"] == dataset_id
    missing = stack.submit({"dataset": http_files.base + "/missing.npz", **SMALL_JOB})
    held = _register_unsent(stack, http_files.serve("/held.npz", npz_bytes(5)))
    stalled = _register_unsent(stack, http_files.serve("/stalled.npz", npz_bytes(6)))
    waiting, given_up = (
        stack.submit({"dataset": held, **SMALL_JOB}),
        stack.submit({"dataset": stalled, **SMALL_JOB}),
    )

    stack.wait_for(waiting, lambda j: worker.count(f"job {waiting}: its dataset is importing") > 0, "waiting")
    assert stack.get(waiting)["status"] == "queued"
    send_import(held, stack.settings)  # the import arrives; once it is ready the job trains
    assert stack.wait_status(waiting, "succeeded", "failed")["status"] == "succeeded", stack.get(waiting)
    assert stack.wait_status(direct, "succeeded", "failed")["status"] == "succeeded", stack.get(direct)

    ended = stack.wait_status(given_up, "failed", "succeeded")
    assert ended["status"] == "failed" and ended["error_code"] == "invalid_dataset", ended
    assert ended["error_message"].startswith("dataset:") and "still importing" in ended["error_message"]
    assert (ended["finished_at"] - ended["created_at"]).total_seconds() >= 6  # SIMTRAIN_IMPORT_WAIT_S
    failed = stack.wait_status(missing, "failed", "succeeded")
    assert failed["status"] == "failed" and failed["error_message"].startswith("dataset:"), failed
    assert "HTTP 404" in failed["error_message"]
    assert wait_dataset(stack.client, stack.headers, stalled, timeout=0)["status"] == "importing"


def test_s3_imports_from_the_s3_server_and_a_job_names_the_uri(stack_factory, s3_server, s3_credentials):
    bucket = f"refs-{uuid.uuid4().hex[:10]}"
    data = parquet_bytes()
    make_bucket(s3_server, bucket).put_object(Bucket=bucket, Key="tables/train.parquet", Body=data)
    stack = stack_factory("sqlite", **ALLOW)
    stack.start_worker()
    c, h = stack.client, stack.headers
    uri = f"s3://{bucket}/tables/train.parquet"
    first = register(c, h, uri)
    assert first.status_code == 202, first.text
    ds = wait_dataset(c, h, first.json()["id"])
    assert (ds["status"], ds["num_samples"], ds["feature_shape"], ds["format"]) == (
        "ready",
        60,
        [8],
        "parquet",
    )
    assert (ds["sha256"], ds["source_uri"]) == (sha256_of(data), uri)
    job_id = stack.submit({"dataset": uri, **SMALL_JOB})
    assert stack.get(job_id)["dataset"] == ds["id"]  # the same reference: the dataset imported above
    assert stack.wait_status(job_id, "succeeded", "failed")["status"] == "succeeded", stack.get(job_id)
    missing = wait_dataset(c, h, register(c, h, f"s3://{bucket}/tables/none.parquet").json()["id"])
    assert missing["status"] == "failed" and missing["error"]["field"] == "uri", missing
    assert "no object" in missing["error"]["message"]
