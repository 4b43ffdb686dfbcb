"""Where a training job's task goes: its queue (by the device it asks for) and its priority in that queue.

A job says `priority` ("low" | "normal" | "high", default "normal") and `resources.device` ("auto" |
"cpu" | "gpu", default "auto"). Its task goes to

    device auto -> <queue>        (today's queue: any worker)
    device cpu  -> <queue>.cpu    (workers of kind cpu only)
    device gpu  -> <queue>.gpu    (workers of kind gpu only; with none running the job waits, queued)

where <queue> is `settings.queue`. A worker consumes `<queue>` and the queue of its kind
(`worker_queues`): the kind is `settings.worker_device` (`SIMTRAIN_WORKER_DEVICE`, `simtrain worker
--device`), "auto" meaning gpu when `torch.cuda.is_available()`. A cpu worker never consumes `.gpu`.

Priorities exist on Redis only: kombu keeps one list per priority step (`<queue>`, `<queue>:3`, `<queue>:6`,
`<queue>:9`) and a worker pops the lists in step order, LOWER number first (`redis_lists(queue)` names them). Training jobs use 3 (high),
6 (normal) and 9 (low); the service's own short tasks (webhook deliveries, dataset imports, tuning steps)
are sent without a priority, which is 0: ahead of every training job. kombu's SQLAlchemy transport (the
embedded default's broker) ignores priorities: there every queue is first in, first out.

    from core.routing import route_for
    route = route_for(job.spec, settings)       # TrainRoute(queue="simtrain.gpu", priority=3)
    queues = worker_queues(settings, worker_kind(settings))
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from core.settings import Settings

__all__ = [
    "DEVICE_KINDS",
    "PRIORITIES",
    "PRIORITY_STEPS",
    "REDIS_SEP",
    "JobDevice",
    "JobPriority",
    "JobResources",
    "TrainRoute",
    "device_queue",
    "job_device",
    "job_priority",
    "priority_number",
    "redis_lists",
    "route_for",
    "train_device",
    "worker_kind",
    "worker_queues",
]

JobPriority = Literal["low", "normal", "high"]
JobDevice = Literal["auto", "cpu", "gpu"]
DEVICE_KINDS = ("cpu", "gpu")

# Redis message priorities (lower first): kombu's priority steps, and each job priority's step
PRIORITY_STEPS = (0, 3, 6, 9)
PRIORITIES: dict[str, int] = {"high": 3, "normal": 6, "low": 9}
REDIS_SEP = ":"  # kombu's list of a step above 0 is `<queue>:<step>`


class JobResources(BaseModel):
    """What a job needs from the worker that trains it."""

    model_config = ConfigDict(extra="forbid")

    device: JobDevice = Field(
        default="auto",
        description="`gpu`: only a GPU worker takes it (it waits queued while none runs); `cpu`: only a "
        "CPU worker; `auto`: any worker (a GPU when the worker has one)",
    )


class TrainRoute(NamedTuple):
    queue: str
    priority: int


def job_priority(spec: dict[str, Any] | None) -> str:
    """The job's priority name; a spec stored before priorities existed is "normal"."""
    value = (spec or {}).get("priority") or "normal"
    return value if value in PRIORITIES else "normal"


def job_device(spec: dict[str, Any] | None) -> str:
    """The device the job asks for (`resources.device`); a spec without one is "auto"."""
    resources = (spec or {}).get("resources") or {}
    value = resources.get("device") if isinstance(resources, dict) else None
    return value if value in ("cpu", "gpu") else "auto"


def priority_number(name: str) -> int:
    """The Redis message priority of a job priority (lower is served first)."""
    return PRIORITIES[name]


def redis_lists(queue: str) -> list[str]:
    """The Redis lists that hold a queue's messages, one per priority step (`LLEN` each for its backlog)."""
    return [f"{queue}{REDIS_SEP}{step}" if step else queue for step in PRIORITY_STEPS]


def device_queue(base: str, device: str) -> str:
    """`<base>` for "auto", `<base>.cpu` / `<base>.gpu` for the others."""
    return base if device == "auto" else f"{base}.{device}"


def route_for(spec: dict[str, Any] | None, settings: Settings) -> TrainRoute:
    """The queue and the priority of a job's training task, from its stored spec."""
    return TrainRoute(device_queue(settings.queue, job_device(spec)), priority_number(job_priority(spec)))


@lru_cache(maxsize=4)
def _detect(setting: str) -> str:
    if setting in DEVICE_KINDS:
        return setting
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def worker_kind(settings: Settings) -> str:
    """This worker's kind, "cpu" or "gpu": `settings.worker_device`, or detected when it is "auto"."""
    return _detect(settings.worker_device)


def worker_queues(settings: Settings, kind: str) -> list[str]:
    """The training queues a worker of `kind` consumes: `<queue>` and `<queue>.<kind>`."""
    return [settings.queue, device_queue(settings.queue, kind)]


def train_device(spec: dict[str, Any] | None, settings: Settings, kind: str) -> str:
    """The torch device name a worker of `kind` trains the job on: CUDA for a gpu job (`settings.device`
    when it names one), "cpu" for a cpu job or on a cpu worker, else `settings.device` ("auto": CUDA when
    there is one)."""
    device = job_device(spec)
    if device == "gpu":
        return settings.device if settings.device.startswith("cuda") else "cuda"
    if device == "cpu" or kind == "cpu":
        return "cpu"
    return settings.device
