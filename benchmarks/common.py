"""Shared helpers of the simtrain benchmarks: interleaved timing, statistics, machine description, free
ports, and writing one `## <name>` section of docs/benchmarks.md without touching the others.

Imported by benchmarks/engine_overhead.py, service_overhead.py and api_load.py (not run on its own):

    from common import interleaved, median, machine, write_section
    times = interleaved({"baseline": run_a, "engine": run_b}, rounds=5)   # A B, B A, A B ...
    median(times["engine"]["wall"])
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
import subprocess
import sys
import threading
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
    "GpuUtilization",
    "ServiceStack",
    "add_report_args",
    "command_line",
    "free_port",
    "interleaved",
    "load_average",
    "machine",
    "median",
    "percentile",
    "publish",
    "ratio",
    "run_line",
    "today",
    "write_section",
]


def interleaved(
    cases: dict[str, Callable[[], Any]],
    rounds: int,
    warmup: int = 1,
    on_result: Callable[[str, int, dict[str, float], Any], None] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Run every case once per round, the order reversed every other round (A B C, C B A, A B C ...).

    Returns {name: {"wall": [seconds per timed round], "cpu": [process CPU seconds per timed round]}}.
    The process CPU time is the steadier number on a loaded machine (it does not count the time other
    processes hold the cores) as long as the case does not spin-wait on threads (run torch with one
    thread when comparing CPU time). The first `warmup` rounds are run but not recorded.
    `on_result(name, round, {"wall": s, "cpu": s}, value)` sees every timed call and what the case
    returned (a case may return extra measurements, e.g. a breakdown).
    """
    names = list(cases)
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in names}
    for r in range(warmup + rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            c0, t0 = time.process_time(), time.perf_counter()
            value = cases[name]()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            if r >= warmup:
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
                if on_result is not None:
                    on_result(name, r - warmup, {"wall": wall, "cpu": cpu}, value)
    return times


class GpuUtilization:
    """Samples a GPU's utilisation while a block runs: the mean of NVML's "% of time a kernel was running".

        with GpuUtilization(0) as util:
            run()
        util.mean_percent, util.peak_memory_mib, len(util.samples)   # nan / 0 where nothing could be read

    NVML comes from nvidia-ml-py (`pynvml`) when it is installed, else `nvidia-smi` is asked each interval.
    NVML's counter covers its own sampling period (1/6 s to 1 s depending on the GPU), so blocks shorter
    than about a second read coarsely.
    """

    def __init__(self, index: int = 0, interval_s: float = 0.1) -> None:
        self.index, self.interval_s = index, interval_s
        self.samples: list[float] = []
        self.memory_mib: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._read = self._reader()

    def _reader(self) -> Callable[[], tuple[float, float]] | None:
        try:
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)

            def read_nvml() -> tuple[float, float]:
                used = pynvml.nvmlDeviceGetMemoryInfo(handle).used / 2**20
                return float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu), used

            return read_nvml
        except Exception:  # noqa: BLE001 - no NVML: try nvidia-smi
            pass

        def read_smi() -> tuple[float, float]:
            out = subprocess.run(
                [
                    "nvidia-smi",
                    f"--id={self.index}",
                    "--query-gpu=utilization.gpu,memory.used",
                    "--format=csv,noheader,nounits",
                ],
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout
            util, used = (float(v) for v in out.strip().split(","))
            return util, used

        try:
            read_smi()
            return read_smi
        except Exception:  # noqa: BLE001 - no GPU readings at all
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            util, used = self._read()
            self.samples.append(util)
            self.memory_mib.append(used)

    def __enter__(self) -> GpuUtilization:
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, name="gpu-utilization", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def mean_percent(self) -> float:
        return statistics.fmean(self.samples) if self.samples else math.nan

    @property
    def peak_memory_mib(self) -> float:
        return max(self.memory_mib) if self.memory_mib else math.nan


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
        threads = torch.get_num_threads()
        text += f", torch {torch.__version__} ({threads} thread{'' if threads == 1 else 's'})"
        if device.startswith("cuda") and torch.cuda.is_available():
            text += f", GPU {torch.cuda.get_device_name(0)}"
    return text


def command_line(
    script: str, argv: list[str] | None, drop: tuple[str, ...] = ("--note", "--json", "--doc")
) -> str:
    """`python benchmarks/<script> <args>` for the docs, without the options (and values) in `drop`."""
    args = list(sys.argv[1:] if argv is None else argv)
    kept: list[str] = []
    skip = False
    for a in args:
        if skip:
            skip = False
            continue
        if a in drop:
            skip = True
            continue
        if a.split("=", 1)[0] in drop:
            continue
        kept.append(a)
    return " ".join(["python", f"benchmarks/{script}", *kept])


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


def add_report_args(ap: Any, section: str) -> None:
    """The options every benchmark that writes a docs section takes: --label, --note, --doc, --no-write."""
    ap.add_argument("--label", default="", help=f"suffix of the docs section: '## {section} (<label>)'")
    ap.add_argument("--note", default="", help="a paragraph added to the docs section")
    ap.add_argument("--doc", type=Path, default=DOC)
    ap.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")


def run_line(script: str, argv: list[str] | None, device: str, load_before: str, minutes: float) -> str:
    """The first line of a section: the command, the date, the machine and the load around the run."""
    return (
        f"`{command_line(script, argv, drop=('--note', '--doc'))}` on {today()}; {machine(device)}; "
        f"load average {load_before} before, {load_average()} after ({minutes:.1f} min)."
    )


def publish(args: Any, section: str, header: str, description: str, table: str) -> None:
    """Write `## <section>[ (<label>)]`: the run line, the description, `--note` and the table."""
    name = section + (f" ({args.label})" if args.label else "")
    note = f"{args.note}\n\n" if args.note else ""
    write_section(name, f"{header}\n\n{description}\n\n{note}{table}", args.doc)
    print(f"wrote the '{name}' section of {args.doc}")


# ---------------------------------------------------------------------------------------------------------
# a running service stack: scratch database, broker, API server (uvicorn) and one Celery worker


PG_ADMIN_URL = os.environ.get("SIMTRAIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("SIMTRAIN_BENCH_REDIS", "redis://127.0.0.1:6379/0")


def _pg_admin_engine(admin_url: str):
    import sqlalchemy as sa

    url = admin_url.replace("postgresql://", "postgresql+psycopg://", 1)
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})


class ServiceStack:
    """A private simtrain deployment on loopback, started and cleaned up by a benchmark.

    kind "postgres": a scratch database `simtrain_bench_<hex>` on the PostgreSQL server at `pg_admin_url`
    (dropped in `close`) and the Redis server at `redis_url` with a queue of its own (its keys deleted in
    `close`). kind "sqlite": the embedded default (SQLite database and kombu's SQLAlchemy broker on a
    second SQLite file) under a temporary SIMTRAIN_HOME. Either way the schema is migrated with
    migrations.upgrade_head, a tenant key is made with core.auth.create_api_key, the API runs as
    `python -m uvicorn --factory api.main:create_app` on 127.0.0.1 and a free port, and `start_worker()`
    runs one `python -m celery -A worker.app:celery_app worker -Q <queue> -c 1 --pool solo`.

        with ServiceStack("postgres", api_workers=2) as stack:
            stack.start_worker()
            r = httpx.post(stack.base_url + "/v1/jobs", json=body, headers=stack.headers)
    """

    def __init__(
        self,
        kind: str,
        *,
        api_workers: int = 1,
        device: str = "cpu",
        pg_admin_url: str = PG_ADMIN_URL,
        redis_url: str = REDIS_URL,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
    ) -> None:
        import tempfile
        import uuid

        if kind not in ("postgres", "sqlite"):
            raise ValueError(kind)
        self.kind = kind
        self.api_workers = api_workers
        self.tag = uuid.uuid4().hex[:8]
        self.tmp = Path(tempfile.mkdtemp(prefix=f"simtrain-bench-{kind}-"))
        self.log_dir = log_dir or self.tmp
        self.queue = f"simtrain-bench-{self.tag}"
        self.pg_admin_url = pg_admin_url
        self.redis_url = redis_url
        self.pg_name: str | None = None
        self.procs: dict[str, Any] = {}
        self._logs: dict[str, Any] = {}
        self.engine = None
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        if kind == "postgres":
            self.pg_name = f"simtrain_bench_{self.tag}"
            self.database_url = f"{pg_admin_url.rsplit('/', 1)[0]}/{self.pg_name}"
            self.broker_url = redis_url
        else:
            self.database_url = f"sqlite:///{self.tmp / 'home' / 'simtrain.db'}"
            self.broker_url = f"sqla+sqlite:///{self.tmp / 'home' / 'broker.db'}"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SIMTRAIN_") and k not in ("DATABASE_URL", "BROKER_URL")
        }
        self.env.update({
            "SIMTRAIN_HOME": str(self.tmp / "home"),
            "SIMTRAIN_DATABASE_URL": self.database_url,
            "SIMTRAIN_BROKER_URL": self.broker_url,
            "SIMTRAIN_STORAGE_URL": str(self.tmp / "storage"),
            "SIMTRAIN_QUEUE": self.queue,
            "SIMTRAIN_DEVICE": device,
            "PYTHONPATH": os.pathsep.join(p for p in [str(ROOT), os.environ.get("PYTHONPATH", "")] if p),
            "PYTHONUNBUFFERED": "1",
        })  # fmt: skip
        self.env.update(env or {})
        self.headers: dict[str, str] = {}

    # -- lifecycle ----------------------------------------------------------------------------------------
    def __enter__(self) -> ServiceStack:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def start(self) -> ServiceStack:
        import sqlalchemy as sa

        from core.auth import create_api_key
        from core.db import make_engine, make_sessionmaker
        from migrations import upgrade_head

        (self.tmp / "home").mkdir(parents=True, exist_ok=True)
        if self.kind == "postgres":
            admin = _pg_admin_engine(self.pg_admin_url)
            with admin.connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{self.pg_name}"'))
            admin.dispose()
        upgrade_head(self.database_url)
        self.engine = make_engine(self.database_url, pool_size=2)
        self.Session = make_sessionmaker(self.engine)
        with self.Session() as s:
            key = create_api_key(s, f"bench-{self.tag}")
        self.headers = {"Authorization": f"Bearer {key}"}
        self._spawn("api", [sys.executable, "-m", "uvicorn", "--factory", "api.main:create_app", "--host", "127.0.0.1",
                            "--port", str(self.port), "--workers", str(self.api_workers), "--log-level", "warning",
                            "--no-access-log"])  # fmt: skip
        self._wait_http(f"{self.base_url}/healthz", "api")
        return self

    def start_worker(self, name: str = "worker", timeout: float = 120.0) -> None:
        self._spawn(name, [sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker", "-Q", self.queue,
                           "-c", "1", "--pool", "solo", "--loglevel", "INFO", "-n", f"bench-{self.tag}-{name}@%h",
                           "--without-gossip", "--without-mingle", "--without-heartbeat"])  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log(name)
            if "simtrain worker ready" in text and " ready." in text:
                return
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"{name} exited with {self.procs[name].returncode}:\n{text[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after {timeout:.0f}s:\n{self.log(name)[-3000:]}")

    def _spawn(self, name: str, cmd: list[str]) -> None:
        import subprocess

        log = open(self.log_dir / f"{self.kind}-{self.tag}-{name}.log", "ab")
        self._logs[name] = log
        self.procs[name] = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait_http(self, url: str, name: str, timeout: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(
                    f"{name} exited with {self.procs[name].returncode}:\n{self.log(name)[-3000:]}"
                )
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f}s:\n{self.log(name)[-3000:]}")

    def log(self, name: str) -> str:
        path = self.log_dir / f"{self.kind}-{self.tag}-{name}.log"
        try:
            return path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, name: str, timeout: float = 30.0) -> None:
        """SIGTERM to the process group this stack started (Celery's warm shutdown), then SIGKILL."""
        import signal
        import subprocess

        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        log = self._logs.pop(name, None)
        if log is not None:
            log.close()

    def close(self) -> None:
        """Stop the processes, drop the scratch database, delete the queue's Redis keys, remove the files."""
        import shutil

        for name in list(self.procs):
            self.stop(name)
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None
        if self.kind == "postgres" and self.pg_name:
            import sqlalchemy as sa

            try:
                admin = _pg_admin_engine(self.pg_admin_url)
                with admin.connect() as c:
                    c.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)'))
                admin.dispose()
            except Exception as exc:  # noqa: BLE001
                print(f"warning: could not drop database {self.pg_name}: {exc}", file=sys.stderr)
            try:
                import redis

                r = redis.Redis.from_url(self.redis_url)
                keys = list(r.scan_iter(match=f"*{self.queue}*"))
                if keys:
                    r.delete(*keys)
                r.close()
            except Exception as exc:  # noqa: BLE001
                print(f"warning: could not delete the Redis keys of {self.queue}: {exc}", file=sys.stderr)
        if os.environ.get("SIMTRAIN_BENCH_KEEP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the database -------------------------------------------------------------------------------------
    def job_timeline(self, job_id: str) -> dict[str, Any]:
        """created/dispatched/started/finished (epoch seconds), train_seconds, and per-epoch (end, seconds)."""
        from sqlalchemy import select

        from core.db import Job, JobEpoch

        with self.Session() as s:
            job = s.get(Job, job_id)
            epochs = (
                s.execute(select(JobEpoch).where(JobEpoch.job_id == job_id).order_by(JobEpoch.epoch))
                .scalars()
                .all()
            )

            def ts(d):
                return d.timestamp() if d is not None else None

            return {
                "status": job.status,
                "created": ts(job.created_at),
                "dispatched": ts(job.dispatched_at),
                "started": ts(job.started_at),
                "finished": ts(job.finished_at),
                "train_seconds": job.train_seconds,
                "epochs": [(ts(e.created_at), float((e.record or {}).get("seconds") or 0.0)) for e in epochs],
            }
