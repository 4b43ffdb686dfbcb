"""Live progress (rich.progress) on a terminal, plain lines elsewhere.

    with JobProgress(job) as shown:                 # epochs of a job (submit --wait, status --follow)
        for event in client.stream_events(job["id"]):
            shown.event(event)
    with ComparisonProgress(console, live=True) as shown:   # runs of a comparison, with its table
        for comp in client.watch_comparison(comp_id):
            shown.update(comp)
    with bytes_progress("uploading d.npz") as callback:     # bytes of an upload
        client.upload_dataset(path, progress=callback)

Job progress goes to stderr. Without a terminal the job's events are one line each, a comparison's table
is printed again whenever a run changes, and an upload prints nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from cli.output import err, line
from cli.tables import comparison_head, comparison_table
from core.status import COMPARISON_TERMINAL

__all__ = ["ComparisonProgress", "JobProgress", "bytes_progress", "epoch_text"]


def _plain_bar(fraction: float, width: int = 30) -> str:
    filled = int(round(max(0.0, min(1.0, fraction)) * width))
    return "#" * filled + "-" * (width - filled)


def epoch_text(data: dict[str, Any]) -> str:
    """`loss=0.31 accuracy=0.92` from an epoch event's validation metrics."""
    val = data.get("val") or {}
    return " ".join(f"{k}={val[k]:.4g}" for k in ("loss", "accuracy") if isinstance(val.get(k), (int, float)))


class JobProgress:
    """A bar of a job's epochs with its status and last validation metrics, fed with its events."""

    def __init__(self, job: dict[str, Any], console: Console | None = None) -> None:
        self.console = console or err()
        self.epochs = int(job["progress"]["epochs"] or 0)
        self.status = job["status"]
        self._progress: Progress | None = None
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}", markup=False),
                TimeElapsedColumn(),
                console=self.console,
            )
            self._task = self._progress.add_task(
                f"[{self.status}]", total=self.epochs or None, completed=job["progress"]["epoch"], metrics=""
            )

    def __enter__(self) -> JobProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def event(self, event: dict[str, Any]) -> None:
        data = event.get("data") or {}
        kind = event.get("kind")
        if kind == "state":
            self.status = data.get("status", self.status)
            self._show_state(event.get("message", ""))
        elif kind == "epoch":
            self._show_epoch(int(data.get("epoch", 0) or 0), epoch_text(data))
        elif kind == "warning":
            line(f"warning: {event.get('message')}", stderr=True)

    def _show_state(self, message: str) -> None:
        if self._progress is None:
            line(f"[{self.status}] {message}".rstrip(), stderr=True)
        else:
            self._progress.update(self._task, description=f"[{self.status}]")

    def _show_epoch(self, epoch: int, metrics: str) -> None:
        if self._progress is None:
            bar = _plain_bar(epoch / self.epochs if self.epochs else 0)
            line(f"epoch {epoch}/{self.epochs} [{bar}] {metrics}".rstrip(), stderr=True)
        else:
            self._progress.update(self._task, completed=epoch, metrics=metrics)


class ComparisonProgress:
    """The live table of a comparison with a bar of its runs (`live`), or the table printed again each
    time a run changes (`plain`), or nothing (both false: `--json` without a terminal)."""

    def __init__(self, console: Console, *, live: bool, plain: bool = False) -> None:
        self.console = console
        self.plain = plain and not live
        self._last: tuple | None = None
        self._live: Live | None = None
        if live:
            self._bar = Progress(
                TextColumn("runs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
            )
            self._task = self._bar.add_task("runs", total=None)
            self._live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> ComparisonProgress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def update(self, comp: dict[str, Any]) -> None:
        table = comparison_table(comp, width=self.console.width)
        if self._live is not None:
            p = comp.get("progress") or {}
            done = sum(p.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
            self._bar.update(self._task, completed=done, total=p.get("total") or None)
            self._live.update(Group(Text(comparison_head(comp)), table, self._bar), refresh=True)
            return
        key = tuple((k["job_id"], k["status"]) for k in comp.get("children") or [])
        if self.plain and (key != self._last or comp["status"] in COMPARISON_TERMINAL):
            self.console.print(Text(comparison_head(comp)), soft_wrap=True)
            self.console.print(table)
        self._last = key


@contextmanager
def bytes_progress(description: str, console: Console | None = None) -> Iterator[Callable[[int, int], None]]:
    """A callback `(sent, total)` drawing a bar of bytes with the transfer speed (on a terminal)."""
    console = console or err()
    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task(description, total=None)

    def callback(sent: int, total: int) -> None:
        progress.update(task, completed=sent, total=total)

    with progress:
        yield callback
