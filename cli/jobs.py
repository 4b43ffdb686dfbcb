"""The job commands: `submit`, `status`, `download`, `cancel`, `pause`, `resume`, `jobs list` and
`jobs delete`.

    simtrain submit --dataset builtin:digits --loss '{"kind":"simloss"}' [--similarity JSON] [--epochs N]
                    [--priority low|normal|high] [--device auto|cpu|gpu]
                    [--tracking-experiment NAME] [--tracking-run-name NAME] [--wait]
    simtrain status JOB [--follow] [--json]
    simtrain download JOB NAME [-o PATH]
    simtrain cancel JOB / pause JOB / resume JOB
    simtrain jobs list [--status S] [--limit N] [--cursor C] [--json]
    simtrain jobs delete JOB [--yes] [--json]

`submit` prints the job's id; with `--wait` it follows the job (a live bar of its epochs on stderr), prints
a summary and exits 0 when the job succeeded, 1 otherwise. `jobs delete` asks before it deletes an ended
job and its files (the question on stderr), unless `--yes`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

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
    TrackingExperimentOption,
    TrackingRunNameOption,
    TrainingOption,
    json_option,
    tracking_body,
)
from cli.output import line, out, print_json
from cli.progress import JobProgress
from cli.tables import jobs_table
from core.client import SimtrainClient
from core.status import JobStatus

__all__ = ["follow", "print_summary", "register"]

JobArgument = Annotated[str, typer.Argument(metavar="JOB", help="the job's id")]


def follow(client: SimtrainClient, job_id: str) -> dict[str, Any]:
    """Show the job's progress from its events stream until it ends; returns the final job."""
    job = client.get_job(job_id)
    with JobProgress(job) as shown:
        for event in client.stream_events(job_id):
            shown.event(event)
    return client.get_job(job_id)


def print_summary(job: dict[str, Any]) -> None:
    line(f"job {job['id']}: {job['status']}")
    if job.get("error"):
        line(f"error: {job['error']['code']}: {job['error']['message']}")
    for key, value in (job.get("final_metrics") or {}).items():
        if isinstance(value, (int, float)):
            line(f"  {key}: {value:.4g}")


def submit(
    ctx: typer.Context,
    dataset: Annotated[str, typer.Option(help="builtin:digits or an uploaded dataset's id")],
    classes: ClassesOption = None,
    similarity: SimilarityOption = None,
    loss: Annotated[str | None, typer.Option(help='loss spec as JSON, e.g. \'{"kind":"simloss"}\'')] = None,
    model: ModelOption = None,
    training: TrainingOption = None,
    epochs: EpochsOption = None,
    priority: PriorityOption = None,
    device: DeviceOption = None,
    tracking_experiment: TrackingExperimentOption = None,
    tracking_run_name: TrackingRunNameOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="follow the job until it ends")] = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Submit a training job."""
    spec = JobFields(dataset, classes, similarity, model, training, epochs, priority, device).spec()
    if loss:
        spec["loss"] = json_option(loss, "loss")
    tracking = tracking_body(tracking_experiment, tracking_run_name)
    if tracking is not None:
        spec["tracking"] = tracking
    with connect(ctx, url, api_key) as client:
        job = client.create_job(spec, idempotency_key=idempotency_key)
        typer.echo(job["id"])
        if wait:
            job = follow(client, job["id"])
            print_summary(job)
            raise typer.Exit(0 if job["status"] == JobStatus.succeeded else 1)


def status(
    ctx: typer.Context,
    job: JobArgument,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="live progress until the job ends")] = False,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Show a job."""
    with connect(ctx, url, api_key) as client:
        if follow_:
            found = follow(client, job)
            if json_:
                print_json(found)
            else:
                print_summary(found)
            return
        found = client.get_job(job)
    if json_:
        print_json(found)
        return
    p = found["progress"]
    eta = f", eta {p['eta_seconds']:.0f}s" if p.get("eta_seconds") is not None else ""
    line(f"job {found['id']}: {found['status']} epoch {p['epoch']}/{p['epochs']}{eta}")
    if found.get("error"):
        line(f"error: {found['error']['code']}: {found['error']['message']}")


def download(
    ctx: typer.Context,
    job: JobArgument,
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME", help="model.onnx, model.safetensors, model.json, metrics.json, curves.png, ..."
        ),
    ],
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="where to write it (default: NAME)")
    ] = None,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Download an artifact of a job."""
    with connect(ctx, url, api_key) as client:
        path = client.download_artifact(job, name, output or name)
    typer.echo(str(path))


def cancel(ctx: typer.Context, job: JobArgument, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None):
    """Cancel a queued or running job (an ended one is an error)."""
    with connect(ctx, url, api_key) as client:
        found = client.cancel(job)
    line(f"job {found['id']}: {found['status']}" + (" (stopping)" if found["status"] == "running" else ""))


def pause(ctx: typer.Context, job: JobArgument, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None):
    """Pause a job: a queued one at once, a running one at its next epoch boundary (resume continues it)."""
    with connect(ctx, url, api_key) as client:
        found = client.pause(job)
    line(f"job {found['id']}: {found['status']}" + (" (pausing)" if found["status"] == "running" else ""))


def resume(ctx: typer.Context, job: JobArgument, url: UrlOption = DEFAULT_URL, api_key: ApiKeyOption = None):
    """Queue a paused job again; it continues from its last checkpoint."""
    with connect(ctx, url, api_key) as client:
        found = client.resume(job)
    line(f"job {found['id']}: {found['status']}")


jobs_app = typer.Typer(help="List and delete jobs.", no_args_is_help=True)


@jobs_app.command("list")
def list_jobs(
    ctx: typer.Context,
    status_: Annotated[JobStatus | None, typer.Option("--status", help="only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="jobs per page")] = 20,
    cursor: Annotated[str | None, typer.Option(help="the next_cursor of the page before")] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Your jobs, newest first (one page)."""
    with connect(ctx, url, api_key) as client:
        page = client.list_jobs(status=status_, limit=limit, cursor=cursor)
    if json_:
        print_json(page)
        return
    console = out()
    console.print(jobs_table(page["items"], width=console.width))
    if page.get("next_cursor"):
        line(f"more: --cursor {page['next_cursor']}", stderr=True)


jobs_app.command("delete")(
    delete_command(
        "job",
        "JOB",
        "its checkpoints and artifacts",
        SimtrainClient.delete_job,
        "Delete an ended job with its checkpoints and artifacts (cancel a running one first).",
    )
)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(status)
    app.command()(download)
    app.command()(cancel)
    app.command()(pause)
    app.command()(resume)
    app.add_typer(jobs_app, name="jobs")
