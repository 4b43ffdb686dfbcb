"""A `matrix` similarity within 1e-6 of valid (a diagonal of 1 - 5e-7, as cosine similarities give) trains,
and the clipping reaches the job as a warning event, once, through a real worker."""

from __future__ import annotations

import pytest
from worker_testlib import job_body

pytestmark = [pytest.mark.slow]

CLASSES = [str(d) for d in range(10)]


def test_a_clipped_matrix_trains_with_one_warning_event(stack_factory):
    stack = stack_factory("sqlite")
    values = [[1.0 if i == j else 0.1 for j in range(10)] for i in range(10)]
    values[3][3] = 1.0 - 5e-7
    values[0][1] = -4e-7
    stack.start_worker()
    job_id = stack.submit(
        job_body(similarity={"kind": "matrix", "values": values}, loss={"kind": "simloss"}, epochs=1)
    )
    stack.wait_status(job_id, "succeeded", "failed", "cancelled", timeout=120)
    assert stack.get(job_id)["status"] == "succeeded", stack.logs()
    warnings = [e.message for e in stack.events(job_id, "warning")]
    assert len(warnings) == 2 and all("clipped" in w or "diagonal" in w for w in warnings), warnings
