"""`simtrain tune`: start an Optuna study over a job spec (its trials are ordinary jobs) and watch its live
table of trials until it ends, then print the best trial.

    simtrain tune --dataset builtin:digits --epochs 3 \
        --param 'training.learning_rate={"type":"float","low":1e-4,"high":0.1,"log":true}' \
        --param 'model.hidden.0={"type":"int","low":16,"high":128}' \
        --metric accuracy --trials 12 --parallel 2 [--pruner median|asha|none] [--sampler tpe|random]
    simtrain tune ... --space @space.json           # the whole search space as JSON instead of --param
    simtrain tune ... --constraint 'macro_f1>=0.8'  # only trials at or above the floor count
    simtrain tune --watch STUDY_ID                  # follow one started before
    simtrain tune ... --no-wait | --report report.html | --json
    simtrain tune ... --priority low --device cpu   # every trial job's place in the queue and worker
    simtrain tune ... --tracking-experiment lr --tracking-run-name digits-lr   # MLflow names
    simtrain tuning delete STUDY_ID [--yes] [--json]   # an ended study, with its trial jobs

Exit status: 0 when the study succeeded (a best trial), 1 otherwise (failed, cancelled, still running
after --timeout, an error answer of the API). `tuning delete` asks before it deletes an ended study with
its trial jobs, their files and its Optuna study (the question on stderr), unless `--yes`.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
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
    OptionError,
    PriorityOption,
    SimilarityOption,
    TrackingExperimentOption,
    TrackingRunNameOption,
    TrainingOption,
    json_option,
    tracking_body,
)
from cli.output import announce_created, err, error_line, line, out, print_json
from core.client import SimtrainClient
from core.tuning.status import TUNING_TERMINAL, TuningStatus

__all__ = ["register", "study_head", "trials_table", "tune", "tuning_app", "tuning_body"]

ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", metavar="PATH=JSON", help='a searched field, e.g. training.learning_rate='
                 '\'{"type":"float","low":1e-4,"high":0.1,"log":true}\' (repeat)'),
]  # fmt: skip
SpaceOption = Annotated[str | None, typer.Option(help="the whole search space as JSON (or @file.json)")]
ConstraintOption = Annotated[
    str | None, typer.Option(metavar="METRIC>=MIN", help="another metric that must not fall below MIN")
]


def tuning_body(
    fields: JobFields, loss: str | None, params: list[str], space: str | None, *,
    metric: str, direction: str, constraint: str | None, trials: int, parallel: int,
    sampler: str, pruner: str, seed: int | None,
) -> dict[str, Any]:  # fmt: skip
    """The POST /v1/tuning body from the command's options (OptionError naming a bad one)."""
    if not fields.dataset:
        raise OptionError("--dataset", "tune needs --dataset (or --watch ID)")
    search = dict(json_option(space, "space") or {})
    for item in params:
        path, sep, dist = item.partition("=")
        if not sep or not path.strip():
            raise OptionError("--param", f"--param {item!r}: expected PATH=JSON")
        search[path.strip()] = json_option(dist, f"param {path.strip()}")
    if not search:
        raise OptionError("--param", "tune needs at least one --param PATH=JSON (or --space)")
    objective: dict[str, Any] = {"metric": metric, "direction": direction}
    if constraint:
        name, sep, floor = constraint.partition(">=")
        try:
            objective["constraint"] = {"metric": name.strip(), "min": float(floor)}
        except ValueError:
            sep = ""
        if not sep:
            raise OptionError("--constraint", f"--constraint {constraint!r}: expected METRIC>=MIN")
    body = fields.spec() | {"search_space": search, "objective": objective, "trials": trials,
                            "parallel": parallel, "sampler": sampler, "pruner": pruner}  # fmt: skip
    if loss:
        body["loss"] = json_option(loss, "loss")
    return body | ({"seed": seed} if seed is not None else {})


def _value(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, int | float) and not isinstance(x, bool) else "-"


def _params(params: dict[str, Any]) -> str:
    """`learning_rate=0.0031 hidden.0=64`: the last part of each path (two for list items), short floats."""

    def name(path: str) -> str:
        parts = path.split(".")
        return ".".join(parts[-2:]) if parts[-1].isdigit() else parts[-1]

    return " ".join(
        f"{name(k)}={v:.4g}" if isinstance(v, float) else f"{name(k)}={v}" for k, v in params.items()
    )


def study_head(study: dict[str, Any]) -> str:
    """`tuning ID: STATUS  5/12 trials done (3 complete, 1 pruned, 1 failed), best accuracy 0.9512`."""
    p = study.get("progress") or {}
    done = p.get("complete", 0) + p.get("pruned", 0) + p.get("failed", 0)
    best = study.get("best_trial") or {}
    metric = (study.get("objective") or {}).get("metric", "value")
    tail = f", best {metric} {_value(best.get('value'))} (trial {best['number']})" if best else ""
    counts = f"{p.get('complete', 0)} complete, {p.get('pruned', 0)} pruned, {p.get('failed', 0)} failed"
    return (
        f"tuning {study['id']}: {study['status']}  {done}/{p.get('trials', 0)} trials done ({counts}){tail}"
    )


def trials_table(study: dict[str, Any]) -> Table:
    """One row per trial: number, state, the job's epoch, the objective value, the params."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, highlight=False)
    metric = (study.get("objective") or {}).get("metric", "value")
    for header, justify in (("trial", "right"), ("state", "left"), ("epoch", "right"), (metric, "right")):
        table.add_column(header, justify=justify, no_wrap=True)
    table.add_column("params", overflow="fold")
    best = (study.get("best_trial") or {}).get("number")
    for t in study.get("trials") or []:
        epoch = f"{t.get('epoch', 0)}/{t.get('epochs', 0)}" if t.get("epochs") else "-"
        mark = " *" if t["number"] == best else ""
        table.add_row(
            f"{t['number']}{mark}", t["state"], epoch, _value(t.get("value")), _params(t.get("params") or {})
        )
    return table


def watch(
    client: SimtrainClient, study_id: str, *, interval: float, timeout: float | None, json_mode: bool
) -> dict:
    """Show the study until it ends or `timeout` passes; returns the last one seen. A terminal shows a
    live table (on stderr with --json); otherwise the table is printed at each change (not with --json)."""
    console: Console = err() if json_mode else out()
    study: dict[str, Any] = {}
    last: tuple | None = None
    shows_live = console.is_terminal
    with (
        Live(console=console, refresh_per_second=4, transient=False) if shows_live else nullcontext() as live
    ):
        for study in client.watch_tuning(study_id, interval=interval, timeout=timeout):
            shown = Group(Text(study_head(study)), trials_table(study))
            if live is not None:
                live.update(shown, refresh=True)
                continue
            key = tuple((t["number"], t["state"], t.get("epoch")) for t in study.get("trials") or [])
            if not json_mode and (key != last or study["status"] in TUNING_TERMINAL):
                console.print(shown)
            last = key
    return study


def _finish(client: SimtrainClient, study: dict[str, Any], report: str | None, json_mode: bool) -> None:
    best = study.get("best_trial")
    if best and not json_mode:
        metric = (study.get("objective") or {}).get("metric", "value")
        line(f"best trial {best['number']}: {metric} {_value(best.get('value'))}, job {best.get('job_id')}")
        for key, value in (best.get("params") or {}).items():
            line(f"  {key} = {value}")
    if report:
        Path(report).write_text(client.tuning_report(study["id"]), encoding="utf-8")
        line(f"report: {report}", stderr=json_mode)
    if json_mode:
        print_json(study)


def tune(
    ctx: typer.Context,
    dataset: Annotated[str | None, typer.Option(help="builtin:digits or an uploaded dataset's id")] = None,
    classes: ClassesOption = None,
    similarity: SimilarityOption = None,
    loss: Annotated[str | None, typer.Option(help="loss spec as JSON (or @file.json)")] = None,
    model: ModelOption = None,
    training: TrainingOption = None,
    epochs: EpochsOption = None,
    param: ParamOption = None,
    space: SpaceOption = None,
    metric: Annotated[str, typer.Option(help="the validation metric to optimise")] = "accuracy",
    direction: Annotated[str, typer.Option(help="maximize or minimize")] = "maximize",
    constraint: ConstraintOption = None,
    trials: Annotated[int, typer.Option(help="trials in all (1..200)")] = 20,
    parallel: Annotated[int, typer.Option(help="trials at the same time (1..16)")] = 2,
    sampler: Annotated[str, typer.Option(help="tpe or random")] = "tpe",
    pruner: Annotated[str, typer.Option(help="median, asha or none")] = "median",
    seed: Annotated[int | None, typer.Option(help="the sampler's (and the trials' training) seed")] = None,
    priority: PriorityOption = None,
    device: DeviceOption = None,
    tracking_experiment: TrackingExperimentOption = None,
    tracking_run_name: TrackingRunNameOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    watch_id: Annotated[str | None, typer.Option("--watch", metavar="ID", help="follow a study")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="print the study id and return")] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls")] = 2.0,
    timeout: Annotated[float | None, typer.Option(help="give up waiting after this many seconds")] = None,
    report: Annotated[str | None, typer.Option(metavar="PATH", help="save the HTML report when done")] = None,
    json_: JsonOption = False,
    url: UrlOption = DEFAULT_URL,
    api_key: ApiKeyOption = None,
) -> None:
    """Tune a job's hyperparameters with Optuna (each trial one job)."""
    with connect(ctx, url, api_key) as client:
        study_id = watch_id
        if not study_id:
            fields = JobFields(dataset, classes, similarity, model, training, epochs, priority, device)
            body = tuning_body(fields, loss, param or [], space, metric=metric, direction=direction,
                               constraint=constraint, trials=trials, parallel=parallel, sampler=sampler,
                               pruner=pruner, seed=seed)  # fmt: skip
            tracking = tracking_body(tracking_experiment, tracking_run_name)
            if tracking is not None:
                body["tracking"] = tracking
            created = client.create_tuning(body, idempotency_key=idempotency_key)
            study_id = created["id"]
            if announce_created(created, no_wait=no_wait, json_=json_):
                return
        study = watch(client, study_id, interval=interval, timeout=timeout, json_mode=json_)
        if study["status"] not in TUNING_TERMINAL:
            error_line(f"tuning study {study_id} is still {study['status']} after {timeout}s")
            raise typer.Exit(1)
        _finish(client, study, report, json_)
    raise typer.Exit(0 if study["status"] == TuningStatus.succeeded else 1)


tuning_app = typer.Typer(help="Delete tuning studies.", no_args_is_help=True)


tuning_app.command("delete")(
    delete_command(
        "tuning study",
        "STUDY_ID",
        "its trial jobs, their checkpoints and artifacts",
        SimtrainClient.delete_tuning,
        "Delete an ended tuning study with its trial jobs and their files (cancel a running one first).",
    )
)


def register(app: typer.Typer) -> None:
    app.command()(tune)
    app.add_typer(tuning_app, name="tuning")
