"""The simtrain worker: a Celery app (`worker.app:celery_app`) that trains one job at a time.

- `worker.app`        the Celery app, its configuration (solo pool) and signal handlers
- `worker.tasks`      `simtrain.train_job(job_id)` and `simtrain.reconcile`
- `worker.runner`     `run_job(job_id)`: claim, heartbeat, train, artifacts, finish
- `worker.heartbeat`  the lease-renewing thread
- `worker.reconcile`  re-sends jobs the broker may have lost

See docs/reliability.md for the guarantees and the tests that prove them.
"""
