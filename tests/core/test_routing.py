"""Routing of training jobs (`core.routing`): job -> queue, priority -> Redis priority, the worker's queues
and training device, the job spec's `priority` / `resources` fields, the broker options that carry them,
and the workers docker-compose.yml runs (loaded as YAML: `docker compose` itself is not needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from pydantic import ValidationError

from core.jobspec import JobCreate
from core.queue import celery_config, train_route
from core.routing import (
    PRIORITIES,
    PRIORITY_STEPS,
    job_device,
    job_priority,
    priority_number,
    route_for,
    train_device,
    worker_kind,
    worker_queues,
)
from core.settings import Settings

BASE = {"dataset": "builtin:digits"}
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path, queue="jobs")


@pytest.mark.parametrize(("device", "queue"), [("auto", "jobs"), ("cpu", "jobs.cpu"), ("gpu", "jobs.gpu")])
def test_each_device_has_its_queue(settings, device, queue):
    spec = JobCreate.model_validate({**BASE, "resources": {"device": device}}).model_dump(mode="json")
    assert route_for(spec, settings).queue == queue


def test_high_is_served_before_normal_before_low_and_all_are_priority_steps():
    numbers = [priority_number(p) for p in ("high", "normal", "low")]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3  # Redis: the lower number first
    assert all(n in PRIORITY_STEPS for n in numbers)
    # the service's own tasks go without a priority (0): ahead of every training job
    assert min(PRIORITY_STEPS) == 0 < min(PRIORITIES.values())


def test_a_spec_stored_before_the_fields_existed_goes_where_jobs_went(settings):
    old = {"dataset": "builtin:digits", "training": {"epochs": 2}}
    assert route_for(old, settings) == ("jobs", priority_number("normal"))
    assert route_for(None, settings) == ("jobs", priority_number("normal"))
    assert job_priority({"priority": "bogus"}) == "normal" and job_device({"resources": "x"}) == "auto"


def test_the_spec_fields_default_validate_and_are_stored():
    spec = JobCreate.model_validate(BASE).model_dump(mode="json")
    assert spec["priority"] == "normal" and spec["resources"] == {"device": "auto"}
    spec = JobCreate.model_validate({**BASE, "priority": "high", "resources": {"device": "gpu"}}).model_dump()
    assert (job_priority(spec), job_device(spec)) == ("high", "gpu")


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"priority": "urgent"}, ("priority",)),
        ({"priority": 1}, ("priority",)),
        ({"resources": {"device": "tpu"}}, ("resources", "device")),
        ({"resources": {"device": "gpu", "memory": "8G"}}, ("resources", "memory")),
        ({"resources": "gpu"}, ("resources",)),
    ],
)
def test_bad_values_name_the_field(body, loc):
    with pytest.raises(ValidationError) as info:
        JobCreate.model_validate({**BASE, **body})
    assert [e["loc"] for e in info.value.errors()] == [loc]


def test_a_worker_takes_the_training_queue_and_its_own_device_queue_only(settings):
    assert worker_queues(settings, "cpu") == ["jobs", "jobs.cpu"]
    assert worker_queues(settings, "gpu") == ["jobs", "jobs.gpu"]
    for device in ("auto", "cpu"):
        assert route_for({"resources": {"device": device}}, settings).queue in worker_queues(settings, "cpu")
    assert route_for({"resources": {"device": "gpu"}}, settings).queue not in worker_queues(settings, "cpu")


def test_the_worker_kind_is_the_setting_or_what_torch_sees(tmp_path):
    assert worker_kind(Settings(home=tmp_path, worker_device="cpu")) == "cpu"
    assert worker_kind(Settings(home=tmp_path, worker_device="gpu")) == "gpu"
    expected = "gpu" if torch.cuda.is_available() else "cpu"
    assert worker_kind(Settings(home=tmp_path, worker_device="auto")) == expected
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, worker_device="cuda")


@pytest.mark.parametrize(
    ("job", "kind", "setting", "device"),
    [
        ("auto", "gpu", "auto", "auto"),
        ("auto", "gpu", "cuda:1", "cuda:1"),
        ("auto", "cpu", "auto", "cpu"),  # a worker told it is a cpu worker trains on the cpu
        ("cpu", "gpu", "auto", "cpu"),
        ("gpu", "gpu", "auto", "cuda"),
        ("gpu", "gpu", "cuda:2", "cuda:2"),
        ("gpu", "gpu", "cpu", "cuda"),  # a gpu job never asks for the cpu
    ],
)
def test_the_training_device_follows_the_job_and_the_worker(tmp_path, job, kind, setting, device):
    settings = Settings(home=tmp_path, device=setting)
    assert train_device({"resources": {"device": job}}, settings, kind) == device


def test_train_route_uses_the_spec_it_is_given_without_the_database(tmp_path):
    settings = Settings(home=tmp_path, queue="q", database_url="sqlite:///" + str(tmp_path / "none" / "x.db"))
    spec = {"priority": "low", "resources": {"device": "cpu"}}
    assert train_route("any", settings, spec) == {"queue": "q.cpu", "priority": priority_number("low")}


def test_redis_carries_priorities_and_the_embedded_broker_gets_no_priority_options(tmp_path):
    redis = celery_config(Settings(home=tmp_path, broker_url="redis://127.0.0.1:6379/0"))
    options = redis["broker_transport_options"]
    assert options["priority_steps"] == list(PRIORITY_STEPS) and options["sep"] == ":"
    assert options["queue_order_strategy"] == "round_robin"
    embedded = celery_config(Settings(home=tmp_path))["broker_transport_options"]
    assert "priority_steps" not in embedded  # kombu's SQLAlchemy transport has no priorities: FIFO


def test_compose_runs_a_gpu_worker_and_a_scalable_cpu_worker_pool():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    gpu, cpu = services["worker-gpu"], services["worker-cpu"]
    assert gpu["command"] == ["simtrain", "worker", "--device", "gpu"]
    assert cpu["command"] == ["simtrain", "worker", "--device", "cpu"]
    (devices,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices["driver"] == "nvidia" and "gpu" in devices["capabilities"]
    assert "resources" not in cpu.get("deploy", {}) and "container_name" not in cpu  # --scale worker-cpu=N
    for worker in (gpu, cpu):
        assert worker["environment"]["BROKER_URL"].startswith("redis://")  # priorities need Redis
        assert "artifacts:/data/artifacts" in worker["volumes"]
        assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "worker" not in services
