"""`simtrain compare`: submit a comparison and watch its live table (a bar of its runs) until every run
has ended, then print the summary against the cross-entropy baseline.

    simtrain compare --dataset builtin:digits --similarity '{"kind":"ordinal"}' \
        --variant simloss='{"kind":"simloss"}' --variant soft='{"kind":"soft_labels"}' --seeds 2 [--epochs N]
    simtrain compare ... --sweep 'r=similarity.reduction_factor=0,0.5,0.9'   # each variant at each r
    simtrain compare --watch COMPARISON_ID          # follow one submitted before
    simtrain compare ... --no-wait                  # print the id and return
    simtrain compare ... --report report.html       # save the HTML report at the end
    simtrain compare ... --json                     # only the final comparison, as JSON, on stdout
    simtrain compare ... --priority high --device gpu   # every child job's place in the queue and worker
    simtrain compare ... --tracking-experiment ordinal --tracking-run-name r-sweep   # MLflow names
    simtrain comparisons delete COMPARISON_ID [--yes] [--json]   # an ended one, with its child jobs

Exit status: 0 when every run succeeded, 1 otherwise (a failed run, a cancelled comparison, still running
after --timeout, an error answer of the API). `comparisons delete` asks before it deletes an ended
comparison with its child jobs and their files (the question on stderr), unless `--yes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from cli.connect import DEFAULT_URL, ApiKeyOption, JsonOption, UrlOption, connect
from cli.deletion import delete_command
from cli.jobfields import (
    ClassesOption,
    DeviceOption,
    EpochsOption,
    IdempotencyKeyOption,
    JobFields,
    ModelOption,
    PriorityOption,
    SimilarityOption,
    SweepOption,
    TrackingExperimentOption,
    TrackingRunNameOption,
    comparison_body,
    tracking_body,
)
from cli.output import announce_created, err, error_line, line, out, print_json
from cli.progress import ComparisonProgress
from cli.tables import summary_caption, summary_table, sweep_caption, sweep_table
from core.client import SimtrainClient
from core.status import COMPARISON_TERMINAL, ComparisonStatus

__all__ = ["comparisons_app", "register", "watch"]

VariantOption = Annotated[
    list[str] | None,
    typer.Option(
        "--variant",
        metavar="NAME=LOSS_JSON",
        help='a loss to compare, e.g. simloss=\'{"kind":"simloss"}\' (repeat; the cross-entropy baseline '
        "is always included)",
    ),
]
DatasetOption = Annotated[str | None, typer.Option(help="builtin:digits or an uploaded dataset's id")]
SeedsOption = Annotated[int, typer.Option(help="runs per variant (1..10)")]
TrainingOption = Annotated[
    str | None, typer.Option(help="training spec as JSON (its seed is the first seed)")
]
WatchOption = Annotated[
    str | None, typer.Option("--watch", metavar="ID", help="follow an existing comparison instead")
]
NoWaitOption = Annotated[bool, typer.Option("--no-wait", help="print the comparison id and return")]
IntervalOption = Annotated[float, typer.Option(help="seconds between polls")]
TimeoutOption = Annotated[float | None, typer.Option(help="give up waiting after this many seconds")]
ReportOption = Annotated[str | None, typer.Option(metavar="PATH", help="save the HTML report here when done")]


def watch(
    client: SimtrainClient, comp_id: str, *, interval: float, timeout: float | None, json_mode: bool
) -> dict[str, Any]:
    """Show the comparison until it ends or `timeout` passes; returns the last one seen. A terminal shows
    a live table (on stderr with --json); otherwise the table is printed at each change (not with --json)."""
    console = err() if json_mode else out()
    comp: dict[str, Any] = {}
    with ComparisonProgress(console, live=console.is_terminal, plain=not json_mode) as shown:
        for comp in client.watch_comparison(comp_id, interval=interval, timeout=timeout):
            shown.update(comp)
    return comp


def _finish(client: SimtrainClient, comp: dict[str, Any], report: str | None, json_mode: bool) -> None:
    """The summary (a swept comparison: a table per headline metric against the parameters), the HTML
    report file and the JSON of an ended comparison."""
    if comp.get("report") and not json_mode:
        _print_summary(comp["report"])
    if report and comp.get("report_url"):
        Path(report).write_text(client.comparison_report(comp["id"]), encoding="utf-8")
        line(f"report: {report}", stderr=json_mode)
    if json_mode:
        print_json(comp)


def _print_summary(report: dict[str, Any]) -> None:
    console = out()
    console.print(Text(summary_caption(report)))  # wrapped to the width
    if not report.get("sweep"):
        console.print(summary_table(report))
        return
    console.print(Text(sweep_caption(report)))
    for metric in report.get("headline") or []:
        console.print(sweep_table(report, metric))


def compare(
    ctx: typer.Context,
    dataset: DatasetOption = None,
    classes: ClassesOption = None,
    similarity: SimilarityOption = None,
    variant: VariantOption = None,
    sweep: SweepOption = None,
    seeds: SeedsOption = 3,
    epochs: EpochsOption = None,
    model: ModelOption = None,
    training: TrainingOption = None,
    priority: PriorityOption = None,
    device: DeviceOption = None,
    tracking_experiment: TrackingExperimentOption = None,
    tracking_run_name: TrackingRunNameOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    watch_id: WatchOption = None,
    no_wait: NoWaitOption = False,
    interval: IntervalOption = 2.0,
    timeout: TimeoutOption = None,
    report: ReportOption = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Compare losses over seeds against cross-entropy."""
    with connect(ctx, url, api_key) as client:
        if watch_id:
            comp_id = watch_id
        else:
            fields = JobFields(dataset, classes, similarity, model, training, epochs, priority, device)
            body = comparison_body(fields, variant or [], seeds, sweep)
            tracking = tracking_body(tracking_experiment, tracking_run_name)
            if tracking is not None:
                body["tracking"] = tracking
            created = client.create_comparison(body, idempotency_key=idempotency_key)
            comp_id = created["id"]
            if announce_created(created, no_wait=no_wait, json_=json_):
                return
        comp = watch(client, comp_id, interval=interval, timeout=timeout, json_mode=json_)
        if comp["status"] not in COMPARISON_TERMINAL:
            error_line(f"comparison {comp_id} is still {comp['status']} after {timeout}s")
            raise typer.Exit(1)
        _finish(client, comp, report, json_)
    raise typer.Exit(0 if comp["status"] == ComparisonStatus.succeeded else 1)


comparisons_app = typer.Typer(help="Delete comparisons.", no_args_is_help=True)


comparisons_app.command("delete")(
    delete_command(
        "comparison",
        "COMPARISON_ID",
        "its child jobs, their checkpoints and artifacts",
        SimtrainClient.delete_comparison,
        "Delete an ended comparison with its child jobs and their files (cancel a running one first).",
    )
)


def register(app: typer.Typer) -> None:
    app.command()(compare)
    app.add_typer(comparisons_app, name="comparisons")
