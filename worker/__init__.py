"""The simtrain worker: a Celery app (`worker.app:celery_app`) that trains one job at a time.

- `worker.app`              the Celery app, its configuration (solo pool) and signal handlers
- `worker.tasks`            `simtrain.train_job(job_id)` and `simtrain.reconcile` (shared tasks, in `include`)
- `worker.runner`           `run_job(job_id)`: claim, heartbeat, train, end the job
- `worker.outcomes`         `JobEnd`: one method per way a claimed job ends; `RunOutcome`
- `worker.hooks`            `JobHooks` (progress to the database, stop conditions), the shutdown flag
- `worker.artifact_upload`  the finished run's artifacts to storage and their rows
- `worker.heartbeat`        the lease-renewing thread
- `worker.reconcile`        re-sends jobs the broker may have lost

See docs/reliability.md for the guarantees and the tests that prove them.
"""
