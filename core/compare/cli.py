"""`simtrain compare`: submit a comparison over HTTP and watch a live table until its children finish.

    simtrain compare --dataset builtin:digits --similarity '{"kind":"ordinal"}' \
        --variant simloss='{"kind":"simloss"}' --variant soft='{"kind":"soft_labels"}' --seeds 2 [--epochs N]
    simtrain compare --watch COMPARISON_ID          # follow one submitted before
    simtrain compare ... --no-wait                  # print the id and return
    simtrain compare ... --report report.html       # save the HTML report at the end

The CLI (`api/cli.py`) wires it up:

    p = sub.add_parser("compare", help="compare losses over seeds against cross-entropy")
    client_args(p)                      # --url, --api-key
    add_compare_arguments(p)
    p.set_defaults(func=compare_command)

Exit status: 0 when every child succeeded, 1 otherwise (a failed child, a cancelled comparison, an error
answer of the API, printed as `simtrain: <status> <code>: <message>`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

__all__ = [
    "add_compare_arguments",
    "build_request",
    "compare_command",
    "render_summary",
    "render_table",
]

TERMINAL = frozenset({"succeeded", "partial", "failed", "cancelled"})
SYMBOL = {"queued": ".", "running": ">", "succeeded": "ok", "failed": "FAIL", "cancelled": "x"}


def add_compare_arguments(p: argparse.ArgumentParser, *, client: bool = False) -> None:
    """The `compare` options; `client=True` also adds --url / --api-key (when the caller does not)."""
    if client:
        p.add_argument("--url", default=os.environ.get("SIMTRAIN_URL", "http://127.0.0.1:8000"))
        p.add_argument("--api-key", default=os.environ.get("SIMTRAIN_API_KEY"))
    p.add_argument("--dataset", help="builtin:digits or an uploaded dataset's id")
    p.add_argument("--classes", help="comma-separated subset / order of the classes")
    p.add_argument("--similarity", help="similarity spec as JSON (or @file.json)")
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME=LOSS_JSON",
        help='a loss to compare, e.g. simloss=\'{"kind":"simloss"}\' (repeat; the cross-entropy baseline is '
        "always included)",
    )
    p.add_argument("--seeds", type=int, default=3, help="runs per variant (1..10, default 3)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--model", help="model spec as JSON")
    p.add_argument("--training", help="training spec as JSON (its seed is the first seed)")
    p.add_argument("--idempotency-key")
    p.add_argument("--watch", metavar="ID", help="follow an existing comparison instead of submitting one")
    p.add_argument("--no-wait", action="store_true", help="print the comparison id and return")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    p.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    p.add_argument("--report", metavar="PATH", help="save the HTML report here when done")
    p.add_argument("--json", action="store_true", help="print the final comparison (with its report) as JSON")


def json_arg(text: str | None, name: str) -> Any:
    """A JSON command-line value, or `@file.json`; exits with a message naming the option when invalid."""
    if text is None:
        return None
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"simtrain: --{name} is not valid JSON: {e}") from e


def base_spec_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The job fields `submit` and `compare` share: dataset, classes, similarity, model, training."""
    spec: dict[str, Any] = {"dataset": args.dataset}
    if args.classes:
        spec["classes"] = [c.strip() for c in args.classes.split(",") if c.strip()]
    if args.similarity:
        spec["similarity"] = json_arg(args.similarity, "similarity")
    if args.model:
        spec["model"] = json_arg(args.model, "model")
    training = json_arg(args.training, "training") or {}
    if args.epochs is not None:
        training["epochs"] = args.epochs
    if training:
        spec["training"] = training
    return spec


def build_request(args: argparse.Namespace) -> dict[str, Any]:
    """The POST /v1/comparisons body from the parsed arguments."""
    if not args.dataset:
        raise SystemExit("simtrain: compare needs --dataset (or --watch ID)")
    if not args.variant:
        raise SystemExit("simtrain: compare needs at least one --variant NAME=LOSS_JSON")
    variants = []
    for item in args.variant:
        name, sep, loss = item.partition("=")
        if not sep or not name.strip():
            raise SystemExit(f"simtrain: --variant {item!r}: expected NAME=LOSS_JSON")
        variants.append({"name": name.strip(), "loss": json_arg(loss, f"variant {name.strip()}")})
    return base_spec_from_args(args) | {"seeds": args.seeds, "variants": variants}


# ------------------------------------------------------------------------------------------- rendering


def _f(x: Any, digits: int = 4) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{x:.{digits}f}"


def _signed(x: Any) -> str:
    return "-" if not isinstance(x, (int, float)) else f"{x:+.4f}"


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
        for r in rows
    ]


def render_table(comp: dict[str, Any]) -> str:
    """The live table: one row per variant, one column per seed (status, epoch or accuracy)."""
    seeds = comp.get("seeds") or sorted({k["seed"] for k in comp.get("children", [])})
    names = [v["name"] for v in comp.get("variants", [])] or sorted({k["variant"] for k in comp["children"]})
    cell = {(k["variant"], k["seed"]): k for k in comp.get("children", [])}
    rows = [["variant", *[f"seed {s}" for s in seeds], "mean acc"]]
    for name in names:
        row, accs = [name], []
        for s in seeds:
            k = cell.get((name, s))
            if k is None:
                row.append("")
                continue
            st = k["status"]
            acc = (k.get("metrics") or {}).get("accuracy")
            if st == "succeeded" and isinstance(acc, (int, float)):
                accs.append(acc)
                row.append(f"ok {acc:.4f}")
            elif st == "running":
                row.append(f"> {k['epoch']}/{k['epochs']}")
            elif st == "failed":
                row.append("FAIL " + ((k.get("error") or {}).get("code") or ""))
            else:
                row.append(SYMBOL.get(st, st))
        row.append(_f(sum(accs) / len(accs)) if accs else "-")
        rows.append(row)
    p = comp.get("progress") or {}
    done = sum(p.get(k, 0) for k in ("succeeded", "failed", "cancelled"))
    head = f"comparison {comp['id']}: {comp['status']}  {done}/{p.get('total', 0)} runs done, {100 * p.get('fraction', 0):.0f}%"
    return "\n".join([head, *_grid(rows)])


def render_summary(report: dict[str, Any]) -> str:
    """Headline metrics per variant (mean +- std) and the paired difference to the baseline with its CI."""
    lines = [
        (
            f"differences to {report['baseline']}: {round(100 * report['confidence'])}% paired bootstrap "
            "interval over validation samples pooled over seeds; + better, - worse, = indistinguishable"
        )
    ]
    rows = [["variant", *report["headline"]]]
    for name in report["variants_order"]:
        entry = report["variants"].get(name)
        if entry is None:
            continue
        row = [name]
        for m in report["headline"]:
            s = (entry["metrics"] or {}).get(m) or {}
            text = f"{_f(s.get('mean'))}+-{_f(s.get('std'))}"
            d = (entry.get("differences") or {}).get(m)
            if d and d.get("diff") is not None:
                mark = "+" if d["improved"] else "-" if d["worse"] else "="
                text += f" {_signed(d['diff'])} [{_signed(d['ci_low'])},{_signed(d['ci_high'])}]{mark}"
            row.append(text)
        rows.append(row)
    return "\n".join([*lines, *_grid(rows)])


# ------------------------------------------------------------------------------------------- HTTP


def _call(http: Any, method: str, path: str, **kwargs: Any) -> Any:
    from core.client import ApiError

    r = http.request(method, path, **kwargs)
    if r.status_code >= 400:
        try:
            err = r.json().get("error") or {}
        except ValueError:
            err = {}
        raise ApiError(
            r.status_code, err.get("code", "http_error"), err.get("message", r.text[:200]), err.get("details"),
            r.headers,
        )  # fmt: skip
    return r


def compare_command(args: argparse.Namespace, *, http: Any = None, out: TextIO | None = None) -> int:
    """Run `simtrain compare` (see the module docstring). `http`: an httpx.Client to use (tests)."""
    import httpx

    out = out or sys.stdout
    if not getattr(args, "api_key", None):
        raise SystemExit("simtrain: no API key: pass --api-key or set SIMTRAIN_API_KEY")
    headers = {"Authorization": f"Bearer {args.api_key}", "User-Agent": "simtrain-cli/0.1"}
    own = http is None
    if own:
        http = httpx.Client(base_url=args.url.rstrip("/"), timeout=60.0)
    try:
        if args.watch:
            comp = _call(http, "GET", f"/v1/comparisons/{args.watch}", headers=headers).json()
        else:
            extra = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
            comp = _call(
                http, "POST", "/v1/comparisons", json=build_request(args), headers={**headers, **extra}
            ).json()
            print(comp["id"], file=out, flush=True)
            if args.no_wait:
                return 0
        comp = _watch(http, headers, comp, args, out)
        if comp["status"] not in TERMINAL:
            print(f"simtrain: still {comp['status']} after {args.timeout}s", file=sys.stderr)
            return 1
        if comp.get("report"):
            print(render_summary(comp["report"]), file=out)
        if args.report and comp.get("report_url"):
            html = _call(http, "GET", comp["report_url"], headers=headers).text
            Path(args.report).write_text(html, encoding="utf-8")
            print(f"report: {args.report}", file=out)
        if args.json:
            print(json.dumps(comp, indent=2), file=out)
        return 0 if comp["status"] == "succeeded" else 1
    finally:
        if own:
            http.close()


def _watch(
    http: Any, headers: dict[str, str], comp: dict[str, Any], args: argparse.Namespace, out: TextIO
) -> dict:
    interactive = out.isatty() if hasattr(out, "isatty") else False
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    drawn_lines = 0
    last_key = None
    while True:
        table = render_table(comp)
        key = tuple((k["job_id"], k["status"]) for k in comp.get("children", []))
        if interactive:
            if drawn_lines:
                out.write(f"\x1b[{drawn_lines}F\x1b[J")  # back to the table's first line, clear below
            out.write(table + "\n")
            out.flush()
            drawn_lines = table.count("\n") + 1
        elif key != last_key or comp["status"] in TERMINAL:
            print(table, file=out, flush=True)
        last_key = key
        if comp["status"] in TERMINAL or (deadline is not None and time.monotonic() >= deadline):
            return comp
        time.sleep(max(args.interval, 0.05))
        comp = _call(http, "GET", f"/v1/comparisons/{comp['id']}", headers=headers).json()


if __name__ == "__main__":  # pragma: no cover - `python -m core.compare.cli ...` works without api/cli.py
    parser = argparse.ArgumentParser(prog="simtrain compare")
    add_compare_arguments(parser, client=True)
    sys.exit(compare_command(parser.parse_args()))
