"""The Celery configuration both sides share: at-least-once delivery settings and the embedded broker."""

from __future__ import annotations

from core.queue import celery_config, make_celery
from core.settings import Settings


def test_delivery_is_at_least_once_with_one_task_prefetched(tmp_path):
    cfg = celery_config(Settings(home=tmp_path, broker_url="redis://127.0.0.1:6379/0", visibility_timeout=77))
    assert cfg["task_acks_late"] and cfg["task_reject_on_worker_lost"]
    assert cfg["worker_prefetch_multiplier"] == 1
    assert cfg["broker_transport_options"]["visibility_timeout"] == 77


def test_the_embedded_broker_polls_five_times_a_second(tmp_path):
    app = make_celery(Settings(home=tmp_path))
    assert app.conf.broker_url.startswith("sqla+sqlite:///")
    with app.connection_for_read() as conn:
        assert type(conn.transport).__name__ == "EmbeddedSqlaTransport"
        assert conn.transport.polling_interval == 0.2
