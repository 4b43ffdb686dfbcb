"""Shared helpers of the simtrain benchmarks: interleaved timing, statistics, machine description, free
ports, and writing one `## <name>` section of docs/benchmarks.md without touching the others.

Imported by benchmarks/engine_overhead.py, service_overhead.py and api_load.py (not run on its own):

    from common import interleaved, median, machine, write_section
    times = interleaved({"baseline": run_a, "engine": run_b}, rounds=5, warmup=1)   # A, B, B, A, A, B ...
    write_section(DOC, "Engine overhead", body)

Rules every benchmark here follows: the baseline is measured in the same process and the same run as
the thing compared with it, interleaved round by round (the machine is shared and noisy), and results
are reported as medians and ratios together with the date, the machine and the load average.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import re
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "benchmarks.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = [
    "DOC",
    "ROOT",
    "free_port",
    "interleaved",
    "load_average",
    "machine",
    "median",
    "percentile",
    "ratio",
    "today",
    "write_section",
]


def interleaved(
    cases: dict[str, Callable[[], Any]],
    rounds: int,
    warmup: int = 1,
    on_result: Callable[[str, int, float, Any], None] | None = None,
) -> dict[str, list[float]]:
    """Run every case once per round, the order reversed every other round (A B C, C B A, A B C ...).

    Returns {name: [seconds per timed round]}. The first `warmup` rounds are run but not recorded.
    `on_result(name, round, seconds, value)` sees every timed call and what the case returned (a case
    may return extra measurements, e.g. a breakdown).
    """
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(warmup + rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            t0 = time.perf_counter()
            value = cases[name]()
            seconds = time.perf_counter() - t0
            if r >= warmup:
                times[name].append(seconds)
                if on_result is not None:
                    on_result(name, r - warmup, seconds, value)
    return times


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else math.nan


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation; nan for no values."""
    xs = sorted(values)
    if not xs:
        return math.nan
    k = (len(xs) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def load_average() -> str:
    try:
        one, five, fifteen = os.getloadavg()
        return f"{one:.1f} / {five:.1f} / {fifteen:.1f}"
    except OSError:
        return "n/a"


def machine(device: str = "cpu") -> str:
    """One line: OS, CPU model and count, torch threads, Python, torch, GPU (if used)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{platform.system()} {platform.release()}, {cpu}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        text += f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
        if device.startswith("cuda") and torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def today() -> str:
    return dt.date.today().isoformat()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_section(name: str, body: str, path: Path = DOC) -> None:
    """Replace (or append) the `## <name>` section of `path`; everything else is left as it is.

    The file is re-read right before writing, since other benchmarks (other people) own other sections.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    section = f"## {name}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(name)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
