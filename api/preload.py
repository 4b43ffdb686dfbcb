"""Optional warm-up of the API process: import what validating and sending a job needs (torch, the losses,
the similarity specs, the heads, timm's list of architectures, Celery) in a background thread after
start-up, so the first submission does not pay for it.

    SIMTRAIN_API_PRELOAD=true simtrain serve        # app.state.preload is the thread (None when off)

Off by default: importing the app loads no torch (idle RSS ~170 MiB instead of ~640 MiB;
docs/benchmarks.md "API process memory") and the first request that needs torch imports it, once per
process. Measured in one process (TestClient, SQLite, a simloss job on builtin:digits): the first
`POST /v1/jobs` took 4.2 s without the preload and 0.16 s after it (which ran 3.0-4.5 s in the
background), the second 0.02 s either way; resident memory before that first submission 177 MiB
without, 845-924 MiB with. On a server with the memory to spare, turn it on: the import then runs while
the process is idle, and the objects it made are taken out of the garbage collector's view afterwards, as
those of start-up are (`api.main.freeze_startup_objects`). Requests are served meanwhile; one that needs
torch before the thread is done waits for the same import (Python's import lock), no longer.
"""

from __future__ import annotations

import gc
import importlib
import logging
import threading
import time

from core.settings import Settings

__all__ = ["PRELOADED", "start_preload"]

log = logging.getLogger("simtrain.api")

WARM_UP_JOB = {  # validated once: the first uses of torch's operators cost more than the imports' rest
    "dataset": "builtin:digits",
    "loss": {"kind": "simloss"},
    "similarity": {"kind": "ordinal"},
    "training": {"epochs": 1},
}
PRELOADED = (
    "core.losses.build",
    "core.similarity.build",
    "core.models.heads",
    "core.metrics",
    "core.queue",
    "sklearn.datasets",
)


def _preload(settings: Settings) -> None:
    try:
        _warm(settings)
    except Exception:  # a warm-up only: the first request imports what is missing
        log.warning(
            "the API preload failed; the first job submission will import what it needs", exc_info=True
        )


def _warm(settings: Settings) -> None:
    from core.jobspec import JobCreate, validate_job
    from core.models.spec import timm_architectures
    from core.queue import broker_client

    start = time.perf_counter()
    for name in PRELOADED:
        importlib.import_module(name)
    timm_architectures()  # what a timm model spec is checked against (cached)
    client = broker_client(settings)  # the Celery client the API sends with (cached); connects on first send
    _ = client.amqp.router, client.amqp.producer_pool, client.tasks, client.events.Dispatcher
    validate_job(JobCreate.model_validate(WARM_UP_JOB), [str(c) for c in range(10)], max_epochs=1)
    gc.collect()
    gc.freeze()
    log.info("preloaded %s in %.2f s", ", ".join(PRELOADED), time.perf_counter() - start)


def start_preload(settings: Settings) -> threading.Thread:
    thread = threading.Thread(target=_preload, args=(settings,), name="simtrain-preload", daemon=True)
    thread.start()
    return thread
