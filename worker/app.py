"""The Celery app of the simtrain worker: `celery -A worker.app:celery_app worker --pool solo`.

Configuration comes from `core.queue.celery_config` (acks_late, prefetch 1, reject on worker lost, an
explicit Redis visibility timeout); this module adds the pool choice, the tasks and the signal handlers.

Tasks: `worker.tasks` defines them as Celery shared tasks and imports no app; `include=["worker.tasks"]`
makes Celery import that module when the worker starts, which registers them on this app (this module
does not import it: no import circle between the two).

Pool: `solo` (the default set here; `--pool solo` on the command line says the same).
    A training job runs in the worker's main process and main thread. That is what makes graceful stop
    simple and reliable: on SIGTERM Celery's warm-shutdown handler runs in the MainProcess and sends
    `worker_shutting_down` *there*; with the prefork pool the job would run in a child process that never
    sees that signal (Celery resets SIGTERM to its default in children, so a SIGTERM to the process group
    kills the child mid-epoch, and a SIGTERM to the parent alone lets the child train to the end). With
    `solo` our handler just sets `worker.runner.shutdown_requested` (defined in `worker.hooks`); the
    training hooks read it after the current epoch, the engine writes a checkpoint, the runner releases the job (back to `queued`) and
    re-sends its task, the task returns (its message is acked) and Celery completes the warm shutdown.
    Solo also avoids forking a process that has imported torch (CUDA cannot be used after fork) and gives
    one job per process, which is what a training worker wants anyway (torch uses every core itself);
    scale out with more worker processes. The cost: while a job trains, this worker does not answer
    remote-control commands (`celery inspect`), which simtrain does not use; job liveness is the database
    lease, renewed by a heartbeat thread.

Queues (`core.routing`): the worker consumes the queues `-Q` names (default: `settings.queue`) and, when
they include `settings.queue`, the device queue of its kind too: `<queue>.cpu` or `<queue>.gpu`. The kind is
`SIMTRAIN_WORKER_DEVICE` (`simtrain worker --device cpu|gpu`), or, when that is `auto`, gpu if
`torch.cuda.is_available()`. The other kind's queue is dropped even when `-Q` names it, so a CPU worker
never takes a GPU job; a worker told it is a GPU worker on a machine without CUDA refuses to start.

Signals:
- `celeryd_after_setup` (after `-Q` is applied): add this worker's device queue (see "Queues").
- `worker_init`: import torch and the training engine before consuming (the first job starts at once).
- `worker_ready`: start the reconciler thread (`worker.reconcile.ReconcilerThread`, every
  `settings.reconcile_seconds`), so no separate beat process is needed.
- `worker_shutting_down` (MainProcess, inside the signal handler: only sets flags): ask the running job to
  stop at the end of its epoch, stop the reconciler.
"""

from __future__ import annotations

import logging
import os
import sys

from celery.signals import (
    after_setup_logger,
    celeryd_after_setup,
    worker_init,
    worker_ready,
    worker_shutting_down,
)

from core.queue import make_celery
from core.routing import DEVICE_KINDS, device_queue, worker_kind
from core.settings import get_settings
from worker.hooks import request_shutdown
from worker.reconcile import ReconcilerThread
from worker.runner import session_factory

__all__ = ["celery_app"]

log = logging.getLogger("simtrain.worker")

settings = get_settings()
settings.ensure_home()  # the embedded default keeps its SQLite database and broker file there
celery_app = make_celery(settings, name="simtrain-worker")
celery_app.conf.update(
    worker_pool="solo",
    worker_concurrency=1,
    include=["worker.tasks"],
)

_reconciler = None


@after_setup_logger.connect
def _setup_logging(logger=None, loglevel=None, **_kw) -> None:
    """Celery leaves the root logger alone (worker_hijack_root_logger=False): route simtrain's logs to it."""
    ours = logging.getLogger("simtrain")
    ours.setLevel(loglevel or logging.INFO)
    if logger is not None and logger.handlers and not ours.handlers:
        for handler in logger.handlers:
            ours.addHandler(handler)
        ours.propagate = False
    elif not logging.getLogger().handlers and not ours.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/%(name)s] %(message)s"))
        ours.addHandler(handler)
        ours.propagate = False


@celeryd_after_setup.connect
def _device_queues(**_kw) -> None:
    """Consume this worker's device queue next to the training queue; never the other kind's."""
    current = get_settings()
    kind = worker_kind(current)
    if kind == "gpu" and current.worker_device == "gpu":
        import torch

        if not torch.cuda.is_available():  # SystemExit: Celery logs and swallows other errors of handlers
            raise SystemExit("simtrain: SIMTRAIN_WORKER_DEVICE=gpu, but CUDA is not available here")
    queues = celery_app.amqp.queues
    if current.queue in queues.consume_from:
        queues.select_add(device_queue(current.queue, kind))
    queues.deselect([device_queue(current.queue, other) for other in DEVICE_KINDS if other != kind])


@worker_init.connect
def _preload(**_kw) -> None:
    """Import the heavy modules (torch, the engine, ONNX export) before taking work: fail fast, start fast."""
    import sklearn.datasets  # noqa: F401  (the built-in datasets)
    import torch._dynamo  # noqa: F401  (imported lazily by the first optimizer step otherwise: ~1.5 s)

    import core.artifacts
    import core.dataset_store
    import core.training.engine

    core.artifacts.warm_plotting()  # matplotlib's import and font cache: ~1 s off the first job


@worker_ready.connect
def _on_worker_ready(sender=None, **_kw) -> None:
    global _reconciler
    current = get_settings()
    consumed = celery_app.amqp.queues.consume_from
    log.info(
        "simtrain worker ready (pid %d, %s worker, queues %s, lease %gs, heartbeat %gs, reconcile every %gs)",
        os.getpid(),
        worker_kind(current),
        ",".join(sorted(consumed)),
        current.lease_seconds,
        current.heartbeat_seconds,
        current.reconcile_seconds,
    )
    if _reconciler is None:
        _reconciler = ReconcilerThread(session_factory(current), current)
        _reconciler.start()


@worker_shutting_down.connect
def _on_shutting_down(sig=None, how=None, exitcode=None, **_kw) -> None:
    # Runs inside Celery's signal handler in the MainProcess: set flags only (no logging, no I/O, no imports).
    request_shutdown()
    if _reconciler is not None:
        _reconciler.stop()
