"""Service overhead benchmark: what the service adds around a short training job, per backend.

It starts two private deployments side by side (benchmarks/common.py `ServiceStack`), each with the API
(uvicorn, `api.main:create_app`, one process, 127.0.0.1 and a free port) and one real Celery worker
(`python -m celery -A worker.app:celery_app worker -Q <queue> -c 1 --pool solo`, the pool worker/app.py
sets):

- postgres: a scratch PostgreSQL database (created, migrated, dropped at the end) + the Redis broker
  (a queue of its own on the shared server; its keys deleted at the end);
- sqlite: the embedded default, SQLite + kombu's SQLAlchemy broker on a second SQLite file.

Then it submits short jobs (builtin:digits, an MLP with one hidden layer of 32, 2 epochs, batch 64)
one at a time, alternating between the two stacks (postgres, sqlite, sqlite, postgres, ...), and for
each job measures, with the client's clock and the job's own timestamps (same host clock):

- overhead = wall time from just before `POST /v1/jobs` until the client sees `succeeded` (polling
  `GET /v1/jobs/{id}` every --poll seconds) minus `train_seconds` the worker reports;
- server overhead = finished_at - created_at - train_seconds (no HTTP, no polling lag);
- dispatch = submit -> running: started_at - the client's submit time (and - created_at);
- where the rest goes: POST latency, worker setup (running -> start of epoch 1), after training (end
  of the last epoch -> finished_at: final evaluation, artifacts incl. ONNX and plots, upload, commit),
  and the client's polling lag (finished_at -> seen).

The first job of each stack (a cold worker) is reported apart and left out of the medians.

    python benchmarks/service_overhead.py                    # both stacks, 12 jobs each, writes docs/benchmarks.md
    python benchmarks/service_overhead.py --stacks postgres --jobs 5 --no-write
    python benchmarks/service_overhead.py --device cuda      # the worker trains on the GPU

Needs PostgreSQL (SIMTRAIN_TEST_PG or --pg-admin, default postgresql://postgres@127.0.0.1:5432/test, a
role that may create databases) and Redis (--redis, default redis://127.0.0.1:6379/0).
Targets: overhead under 1 s; dispatch p50 under 100 ms on Redis.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DOC,
    command_line,
    PG_ADMIN_URL,
    REDIS_URL,
    ServiceStack,
    load_average,
    machine,
    median,
    percentile,
    today,
    write_section,
)

import httpx  # noqa: E402

SECTION = "Service overhead"
OVERHEAD_TARGET_S = 1.0
DISPATCH_TARGET_S = 0.100


def job_body(epochs: int, seed: int) -> dict:
    return {
        "dataset": "builtin:digits",
        "model": {"kind": "mlp", "hidden": [32]},
        "loss": {"kind": "cross_entropy"},
        "training": {"epochs": epochs, "batch_size": 64, "seed": seed},
    }


def run_job(stack: ServiceStack, client: httpx.Client, body: dict, poll: float, timeout: float) -> dict:
    """Submit one job, wait for a terminal state; the measurements of one job."""
    t_submit = time.time()
    p0 = time.perf_counter()
    r = client.post(f"{stack.base_url}/v1/jobs", json=body, headers=stack.headers)
    p_post = time.perf_counter()
    if r.status_code != 201:
        raise RuntimeError(f"{stack.kind}: POST /v1/jobs -> {r.status_code} {r.text[:500]}")
    job_id = r.json()["id"]
    deadline = p0 + timeout
    while True:
        job = client.get(f"{stack.base_url}/v1/jobs/{job_id}", headers=stack.headers).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            p_seen, t_seen = time.perf_counter(), time.time()
            break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{stack.kind}: job {job_id} still {job['status']} after {timeout:.0f}s\n"
                               f"{stack.log('worker')[-3000:]}")
        time.sleep(poll)
    if job["status"] != "succeeded":
        raise RuntimeError(f"{stack.kind}: job {job_id} ended {job['status']}: {job.get('error')}\n"
                           f"{stack.log('worker')[-3000:]}")
    tl = stack.job_timeline(job_id)
    train_s = float(job["train_seconds"])
    created, started, finished = tl["created"], tl["started"], tl["finished"]
    first_end, first_s = tl["epochs"][0]
    last_end, _ = tl["epochs"][-1]
    wall = p_seen - p0
    return {
        "job_id": job_id,
        "wall_s": wall,
        "train_s": train_s,
        "overhead_s": wall - train_s,
        "server_overhead_s": finished - created - train_s,
        "dispatch_s": started - t_submit,
        "dispatch_created_s": started - created,
        "post_s": p_post - p0,
        "worker_setup_s": (first_end - first_s) - started,
        "after_training_s": finished - last_end,
        "poll_lag_s": t_seen - finished,
    }


METRICS = [
    ("overhead_s", "overhead (wall - train_seconds)"),
    ("server_overhead_s", "server overhead (finished - created - train)"),
    ("dispatch_s", "dispatch: submit -> running"),
    ("dispatch_created_s", "dispatch: created_at -> running"),
    ("post_s", "POST /v1/jobs latency"),
    ("worker_setup_s", "worker: running -> epoch 1 starts"),
    ("after_training_s", "worker: last epoch -> finished"),
    ("poll_lag_s", "client polling lag"),
    ("train_s", "train_seconds (reported)"),
    ("wall_s", "wall, submit -> seen succeeded"),
]


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    return {key: {"p50": median(r[key] for r in rows), "p90": percentile([r[key] for r in rows], 90),
                  "max": max(r[key] for r in rows)} for key, _ in METRICS}


def table(summary: dict[str, dict], cold: dict[str, dict], stacks: list[str]) -> str:
    head = " | ".join(f"{k}: p50 / p90 / max" for k in stacks) + " | " + " | ".join(f"{k}: cold 1st job" for k in stacks)
    lines = [f"| ms | {head} |", "| --- |" + " ---: |" * (2 * len(stacks))]
    for key, label in METRICS:
        cells = [f"{summary[k][key]['p50'] * 1e3:.0f} / {summary[k][key]['p90'] * 1e3:.0f} / "
                 f"{summary[k][key]['max'] * 1e3:.0f}" for k in stacks]
        cells += [f"{cold[k][key] * 1e3:.0f}" for k in stacks]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stacks", nargs="+", default=["postgres", "sqlite"], choices=["postgres", "sqlite"])
    ap.add_argument("--jobs", type=int, default=12, help="timed jobs per stack, after one cold job")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--poll", type=float, default=0.01, help="seconds between status polls (default 0.01)")
    ap.add_argument("--timeout", type=float, default=180.0, help="per job")
    ap.add_argument("--device", default="cpu", help="SIMTRAIN_DEVICE of the worker (default cpu)")
    ap.add_argument("--pg-admin", default=PG_ADMIN_URL)
    ap.add_argument("--redis", default=REDIS_URL)
    ap.add_argument("--note", default="")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

    load_before = load_average()
    t_start = time.perf_counter()
    stacks: dict[str, ServiceStack] = {}
    rows: dict[str, list[dict]] = {k: [] for k in args.stacks}
    cold: dict[str, dict] = {}
    try:
        for kind in args.stacks:
            print(f"starting the {kind} stack ...", flush=True)
            stack = ServiceStack(kind, device=args.device, pg_admin_url=args.pg_admin, redis_url=args.redis)
            stacks[kind] = stack
            stack.start()
            stack.start_worker()
        with httpx.Client(timeout=30) as client:
            for i in range(args.jobs + 1):
                order = args.stacks if i % 2 == 0 else args.stacks[::-1]
                for kind in order:
                    res = run_job(stacks[kind], client, job_body(args.epochs, seed=i + 1), args.poll, args.timeout)
                    (rows[kind].append(res) if i > 0 else cold.__setitem__(kind, res))
                    print(f"  {kind:8s} job {i:2d}{' (cold)' if i == 0 else '       '}  overhead "
                          f"{res['overhead_s'] * 1e3:6.0f} ms  dispatch {res['dispatch_s'] * 1e3:6.0f} ms  "
                          f"train {res['train_s'] * 1e3:6.0f} ms  after-training {res['after_training_s'] * 1e3:5.0f} ms",
                          flush=True)
    finally:
        for stack in stacks.values():
            stack.close()
    minutes = (time.perf_counter() - t_start) / 60

    summary = {k: summarize(v) for k, v in rows.items()}
    tbl = table(summary, cold, args.stacks)
    verdicts = []
    for k in args.stacks:
        ok = summary[k]["overhead_s"]["p50"] < OVERHEAD_TARGET_S
        verdicts.append(f"{k} overhead p50 {summary[k]['overhead_s']['p50'] * 1e3:.0f} ms "
                        f"({'met' if ok else 'MISSED'}; p90 {summary[k]['overhead_s']['p90'] * 1e3:.0f} ms)")
    if "postgres" in summary:
        d = summary["postgres"]["dispatch_s"]["p50"]
        verdicts.append(f"Redis dispatch p50 {d * 1e3:.0f} ms ({'met' if d < DISPATCH_TARGET_S else 'MISSED'})")
    print()
    print(tbl)
    print("\ntargets (overhead < 1 s, dispatch p50 < 100 ms on Redis): " + "; ".join(verdicts))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "cold": cold, "summary": summary}, indent=1))
    if args.no_write:
        return 0
    cmd = command_line("service_overhead.py", argv)
    body = (
        f"`{cmd.strip()}` on {today()}; {machine(args.device)}; load average {load_before} before, "
        f"{load_average()} after ({minutes:.1f} min).\n\n"
        f"Short jobs (builtin:digits, 1,437 training samples, MLP hidden 32, {args.epochs} epochs, batch 64) "
        f"submitted one at a time through the real API to one real Celery worker (solo pool) per stack, the "
        f"two stacks alternating job by job; {args.jobs} timed jobs per stack after one cold job. The "
        f"client polls the job every {args.poll * 1e3:.0f} ms. Times in ms, p50 / p90 / max. Targets: "
        f"overhead < {OVERHEAD_TARGET_S:.0f} s, Redis dispatch p50 < {DISPATCH_TARGET_S * 1e3:.0f} ms: "
        + "; ".join(verdicts) + ".\n\n"
        + (f"{args.note}\n\n" if args.note else "")
        + f"{tbl}\n"
    )
    write_section(SECTION, body, args.doc)
    print(f"wrote the '{SECTION}' section of {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
