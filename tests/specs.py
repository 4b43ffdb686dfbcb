"""Job bodies that several test suites submit (import them; never change them in place).

from tests.specs import SIMLOSS_JOB
client.post("/v1/jobs", json={**SIMLOSS_JOB, "training": {"epochs": 1}})
"""

from __future__ import annotations

from typing import Any

__all__ = ["SIMLOSS_JOB"]

# SimLoss over an ordinal similarity on three digit classes, a linear model, two epochs: seconds to train
SIMLOSS_JOB: dict[str, Any] = {
    "dataset": "builtin:digits",
    "classes": ["0", "1", "2"],
    "similarity": {"kind": "ordinal"},
    "loss": {"kind": "simloss"},
    "model": {"kind": "linear"},
    "training": {"epochs": 2},
}
