"""The CLI's tables (rich.table), each fitted to a terminal width: long names are abbreviated with an
ellipsis, ids are never cut.

    out().print(jobs_table(page["items"]))
    out().print(comparison_table(comp, width=console.width))     # the live table of `simtrain compare`
    out().print(summary_table(comp["report"]))                   # mean +- std, differences, verdicts
    out().print(sweep_table(comp["report"], "accuracy"))         # a swept comparison: metric vs parameter

`comparison_head(comp)` is the line above the live table: `comparison ID: STATUS  3/8 runs done, 40%`.
"""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.filesize import decimal
from rich.table import Table
from rich.text import Text

__all__ = [
    "builtin_table",
    "comparison_head",
    "comparison_table",
    "datasets_table",
    "jobs_table",
    "summary_caption",
    "summary_table",
    "sweep_caption",
    "sweep_table",
]

NAME_WIDTH = 16  # variant and dataset names longer than this end in an ellipsis
ID_WIDTH = 36


def _table(*, tight: bool = False) -> Table:
    """A table with a rule under its header; `tight`: one space between columns (narrow terminals)."""
    return Table(
        box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
        padding=(0, 0) if tight else (0, 1), highlight=False,
    )  # fmt: skip


def _name_column(table: Table, header: str, width: int = NAME_WIDTH) -> None:
    table.add_column(header, max_width=width, no_wrap=True, overflow="ellipsis")


def _when(iso: str | None) -> str:
    """`2024-01-02 03:04` (UTC) from an ISO 8601 time."""
    return (iso or "")[:16].replace("T", " ")


def jobs_table(jobs: list[dict[str, Any]], width: int = 100) -> Table:
    table = _table(tight=width < 110)
    table.add_column("id", no_wrap=True, min_width=ID_WIDTH)
    table.add_column("status", no_wrap=True, min_width=9)
    _name_column(table, "dataset")
    table.add_column("loss", no_wrap=True, overflow="ellipsis", max_width=14)
    table.add_column("epoch", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True, min_width=16)
    for job in jobs:
        p = job.get("progress") or {}
        loss = ((job.get("spec") or {}).get("loss") or {}).get("kind", "")
        table.add_row(
            job["id"], job["status"], job.get("dataset", ""), loss,
            f"{p.get('epoch', 0)}/{p.get('epochs', 0)}", _when(job.get("created_at")),
        )  # fmt: skip
    return table


def datasets_table(datasets: list[dict[str, Any]], width: int = 100) -> Table:
    table = _table(tight=width < 120)
    table.add_column("id", no_wrap=True, min_width=ID_WIDTH)
    table.add_column("name", max_width=24, overflow="fold")  # wraps first when space is short
    table.add_column("format", no_wrap=True)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("samples", justify="right", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("created", no_wrap=True, min_width=16)
    for d in datasets:
        table.add_row(
            d["id"], d["name"], d["format"], str(d["num_classes"]), str(d["num_samples"]),
            decimal(d["size_bytes"]), _when(d.get("created_at")),
        )  # fmt: skip
    return table


def builtin_table(items: list[dict[str, Any]]) -> Table:
    table = _table()
    table.add_column("ref", no_wrap=True)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("samples", justify="right", no_wrap=True)
    table.add_column("description", ratio=1, overflow="fold")
    for d in items:
        classes = str(len(d.get("classes") or []))
        table.add_row(d["ref"], classes, str(d.get("num_samples") or ""), d.get("description", ""))
    return table


# ------------------------------------------------------------------------------------------- comparisons

SYMBOL = {"queued": ".", "running": ">", "succeeded": "ok", "failed": "FAIL", "cancelled": "x"}
FULL_SEED_WIDTH = 13  # "ok 0.9123" with padding and separator


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _f(x: Any, digits: int = 4) -> str:
    return f"{x:.{digits}f}" if _number(x) else "-"


def _signed(x: Any) -> str:
    return f"{x:+.4f}" if _number(x) else "-"


def comparison_head(comp: dict[str, Any]) -> str:
    p = comp.get("progress") or {}
    done = sum(p.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
    pct = 100 * p.get("fraction", 0)
    return f"comparison {comp['id']}: {comp['status']}  {done}/{p.get('total', 0)} runs done, {pct:.0f}%"


def _seed_cell(kid: dict[str, Any] | None, compact: bool) -> str:
    if kid is None:
        return ""
    status = kid["status"]
    acc = (kid.get("metrics") or {}).get("accuracy")
    if status == "succeeded" and _number(acc):
        return f"{acc:.3f}" if compact else f"ok {acc:.4f}"
    if status == "running":
        return f"{kid['epoch']}/{kid['epochs']}" if compact else f"> {kid['epoch']}/{kid['epochs']}"
    if status == "failed" and not compact:
        return f"FAIL {(kid.get('error') or {}).get('code') or ''}".strip()
    return SYMBOL.get(status, status)


def comparison_table(comp: dict[str, Any], width: int = 100) -> Table:
    """One row per variant, one column per seed (status, epoch or accuracy), the mean accuracy. Many seeds
    on a narrow terminal: shorter cells (`0.912`, `3/10`, `FAIL`) under the bare seed values."""
    children = comp.get("children") or []
    seeds = comp.get("seeds") or sorted({k["seed"] for k in children})
    names = [v["name"] for v in comp.get("variants") or []] or sorted({k["variant"] for k in children})
    cell = {(k["variant"], k["seed"]): k for k in children}
    compact = NAME_WIDTH + 12 + FULL_SEED_WIDTH * len(seeds) > width
    table = _table()
    _name_column(table, "variant")
    for s in seeds:
        table.add_column(str(s) if compact else f"seed {s}", justify="right", no_wrap=True, max_width=14)
    table.add_column("mean acc", justify="right", no_wrap=True)
    for name in names:
        kids = [cell.get((name, s)) for s in seeds]
        accs = [
            k["metrics"]["accuracy"]
            for k in kids
            if k and k["status"] == "succeeded" and _number((k.get("metrics") or {}).get("accuracy"))
        ]
        mean = _f(sum(accs) / len(accs)) if accs else "-"
        table.add_row(name, *[_seed_cell(k, compact) for k in kids], mean)
    return table


def summary_caption(report: dict[str, Any]) -> str:
    """The line above the summary: how the differences' intervals and the verdicts were made."""
    stats = report.get("statistics")
    if not stats:  # a report made before the paired test across seeds
        return (
            f"differences to {report['baseline']}: {round(100 * report['confidence'])}% paired bootstrap "
            "interval over validation samples pooled over seeds; + better, - worse, = indistinguishable"
        )
    return (
        f"differences to {report['baseline']}: {stats['interval_detail']}; verdict: the paired test across "
        f"seeds ({' or '.join(TEST_NAMES.get(t, t) for t in stats.get('tests') or [])}) after Holm's "
        f"correction, alpha {stats.get('alpha')}"
    )


TEST_NAMES = {"wilcoxon_signed_rank": "wilcoxon", "paired_t_test": "t-test"}


def _p(x: Any) -> str:
    if not _number(x):
        return "-"
    return "<.001" if x < 0.001 else f"{x:.3f}"


def _verdict_cells(d: dict[str, Any]) -> list[str]:
    """verdict, test and Holm-adjusted p of a difference (`-` where the report has none)."""
    test = d.get("test")
    return [d.get("verdict") or "-", TEST_NAMES.get(test, test or "-"), _p(d.get("p_adjusted"))]


def _summary_cells(entry: dict[str, Any], metric: str) -> list[str]:
    s = (entry.get("metrics") or {}).get(metric) or {}
    d = (entry.get("differences") or {}).get(metric)
    mean = f"{_f(s.get('mean'))} +- {_f(s.get('std'))}"
    if not d or d.get("diff") is None:
        return [mean, "", "", *(_verdict_cells(d) if d else ["", "", ""])]
    interval = f"[{_signed(d.get('ci_low'))}, {_signed(d.get('ci_high'))}]"
    return [mean, _signed(d["diff"]), interval, *_verdict_cells(d)]


def _verdict_columns(table: Table) -> None:
    table.add_column("verdict", no_wrap=True)
    table.add_column("test", no_wrap=True)
    table.add_column("p adj", justify="right", no_wrap=True)


def summary_table(report: dict[str, Any]) -> Table:
    """Per variant (a row with its name) and headline metric: mean +- std over seeds, the paired
    difference to the baseline, its confidence interval, the verdict, the test that gave it and its
    Holm-adjusted p-value."""
    table = _table()
    _name_column(table, "variant / metric", width=21)
    table.add_column("mean +- std", justify="right", no_wrap=True)
    table.add_column("diff", justify="right", no_wrap=True)
    table.add_column(f"{round(100 * report['confidence'])}% CI", justify="right", no_wrap=True)
    _verdict_columns(table)
    metrics = list(report.get("headline") or [])
    for name in report.get("variants_order") or []:
        entry = report["variants"].get(name)
        if entry is None:
            continue
        table.add_row(Text(name, style="bold"))
        for i, metric in enumerate(metrics):
            table.add_row(f"  {metric}", *_summary_cells(entry, metric), end_section=i == len(metrics) - 1)
    return table


# ------------------------------------------------------------------------------------------------ sweeps


def sweep_caption(report: dict[str, Any]) -> str:
    """The line above the sweep tables: the axes and what the intervals are."""
    sweep = report.get("sweep") or {}
    axes = "; ".join(f"{a['name']} = {a['path']}" for a in sweep.get("axes") or [])
    return (
        f"sweep over {axes}: the mean over seeds with its {round(100 * sweep.get('confidence', 0.95))}% "
        f"Student t interval; diff and verdict against {report['baseline']} as above (Holm-corrected over "
        "every grid point)"
    )


def _axis_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def sweep_table(report: dict[str, Any], metric: str) -> Table:
    """One headline metric of a swept comparison: the baseline, then per (variant, grid point) the mean
    over seeds, its interval, the difference to the baseline, the verdict, test and adjusted p."""
    sweep = report["sweep"]
    axes = [a["name"] for a in sweep.get("axes") or []]
    better = (report.get("better") or {}).get(metric, "higher")
    table = _table(tight=len(axes) > 1)
    table.title = f"{metric} ({better} is better)"
    _name_column(table, "variant", width=14)
    for name in axes:
        table.add_column(name, justify="right", no_wrap=True, max_width=8, overflow="ellipsis")
    table.add_column("mean", justify="right", no_wrap=True)
    table.add_column(f"{round(100 * sweep.get('confidence', 0.95))}% interval", justify="right", no_wrap=True)
    table.add_column("diff", justify="right", no_wrap=True)
    _verdict_columns(table)
    b = (sweep.get("baseline") or {}).get(metric) or {}
    interval = f"[{_f(b.get('ci_low'))}, {_f(b.get('ci_high'))}]"
    table.add_row(report["baseline"], *["" for _ in axes], _f(b.get("mean")), interval, "", "", "", "",
                  end_section=True)  # fmt: skip
    for row in (sweep.get("tables") or {}).get(metric) or []:
        point = row.get("point") or {}
        table.add_row(
            row.get("variant") or row.get("name", ""), *[_axis_text(point.get(a)) for a in axes],
            _f(row.get("mean")), f"[{_f(row.get('ci_low'))}, {_f(row.get('ci_high'))}]",
            _signed(row.get("diff")), *_verdict_cells(row),
        )  # fmt: skip
    return table
