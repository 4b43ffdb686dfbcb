"""HTML pages: the self-contained comparison report and the jobs page.

    html = render_report_html(report, meta, chart_js=Path("api/static/chart.umd.min.js").read_text())
    page = render_jobs_page(static_base="/static", api_base="/v1")

`render_report_html` inlines everything it needs (the chart library, the report data, the drawing code),
so the file works offline, saved to disk or opened from a `blob:` URL: validation curves per variant,
the differences to the baseline as bars with their confidence intervals, the confusion matrices side by
side, the similarity matrix as a heatmap and the tables of numbers. The jobs page loads the chart library
from `static_base`, asks for an API key (kept in sessionStorage only), lists jobs and comparisons and
polls the JSON API for live progress; a job's curves and confusion matrix open on click, a finished
comparison's report opens in a frame.

Every value from the report or the API reaches the page as JSON data (`<` escaped) or through
`textContent`, never as markup.
"""

from __future__ import annotations

import html as _html
import json
import re
from typing import Any

__all__ = ["json_for_script", "render_jobs_page", "render_report_html"]


def json_for_script(data: Any) -> str:
    """JSON that is safe inside <script type="application/json"> (no '</script>', no HTML comments)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    return (
        text.replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _inline_js(source: str) -> str:
    source = re.sub(r"//# sourceMappingURL=\S*\s*$", "", source.rstrip())
    if re.search(r"</script", source, re.IGNORECASE):
        raise ValueError("script source contains '</script'")
    return source


STYLE = """
:root { --fg:#1d2433; --muted:#667085; --line:#d0d5dd; --bg:#ffffff; --soft:#f5f7fa;
        --good:#137333; --bad:#b3261e; --same:#667085; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--fg); background: var(--bg); margin: 0; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; }
h3 { font-size: 14px; margin: 0 0 6px; }
.muted { color: var(--muted); } .mono { font-family: ui-monospace, "DejaVu Sans Mono", monospace; }
table { border-collapse: collapse; margin: 6px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: var(--soft); font-weight: 600; }
.improved { color: var(--good); font-weight: 600; } .worse { color: var(--bad); font-weight: 600; }
.same { color: var(--same); }
.grid { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fff; }
.bar { display: inline-block; width: 120px; height: 10px; background: var(--soft); border-radius: 5px;
       overflow: hidden; vertical-align: middle; margin-right: 6px; }
.bar > span { display: block; height: 100%; background: #3b6fd8; }
.status-succeeded { color: var(--good); } .status-failed { color: var(--bad); }
.status-cancelled, .status-partial { color: #9a6700; } .status-running { color: #3b6fd8; }
button { font: inherit; padding: 4px 10px; border: 1px solid var(--line); border-radius: 6px;
         background: var(--soft); cursor: pointer; }
input { font: inherit; padding: 4px 8px; border: 1px solid var(--line); border-radius: 6px; }
tr.clickable { cursor: pointer; } tr.clickable:hover td { background: #eef3fd; }
tr.selected td { background: #e3ebfb; }
"""

# drawing helpers shared by both pages (plain JS, needs window.Chart)
COMMON_JS = r"""
"use strict";
const PALETTE = ["#1f5fbf", "#d9480f", "#2f9e44", "#9c36b5", "#e8590c", "#0c8599", "#c2255c", "#5f3dc4",
                 "#66a80f", "#495057"];
const CHARTS = {};
function fmt(x, d) {
  if (x === null || x === undefined || Number.isNaN(x)) return "\u2013";
  return Number(x).toFixed(d === undefined ? 4 : d);
}
function signed(x, d) { return x === null || x === undefined ? "\u2013" : (x >= 0 ? "+" : "") + fmt(x, d); }
function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") e.textContent = v; else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
  }
  for (const c of children || []) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
function heatColor(t) {
  t = Math.max(0, Math.min(1, t));
  const stops = [[247, 251, 255], [107, 174, 214], [8, 48, 107]];
  const seg = t < 0.5 ? 0 : 1, u = t < 0.5 ? t / 0.5 : (t - 0.5) / 0.5;
  const a = stops[seg], b = stops[seg + 1];
  return "rgb(" + a.map((v, i) => Math.round(v + (b[i] - v) * u)).join(",") + ")";
}
function drawHeatmap(canvas, matrix, labels, opts) {
  opts = opts || {};
  const n = matrix.length;
  const cell = Math.max(3, Math.min(36, Math.floor((opts.size || 300) / Math.max(n, 1))));
  const showLabels = n <= 40, margin = showLabels ? 64 : 12, top = 14;
  const w = margin + n * cell + 8, h = margin + n * cell + top;
  const ratio = window.devicePixelRatio || 1;
  canvas.width = w * ratio; canvas.height = h * ratio;
  canvas.style.width = w + "px"; canvas.style.height = h + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, w, h);
  let maxv = opts.max;
  if (maxv === undefined) { maxv = 0; for (const row of matrix) for (const v of row) maxv = Math.max(maxv, v); }
  for (let i = 0; i < n; i++) {
    const row = matrix[i], rowSum = row.reduce((a, b) => a + b, 0);
    for (let j = 0; j < n; j++) {
      const v = row[j], t = opts.normalizeRows ? (rowSum ? v / rowSum : 0) : (maxv ? v / maxv : 0);
      ctx.fillStyle = heatColor(t);
      ctx.fillRect(margin + j * cell, top + i * cell, cell, cell);
      if (cell >= 22 && (opts.values !== false)) {
        ctx.fillStyle = t > 0.55 ? "#fff" : "#1d2433";
        ctx.font = "10px sans-serif"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
        const txt = Number.isInteger(v) ? String(v) : v.toFixed(2);
        ctx.fillText(txt, margin + j * cell + cell / 2, top + i * cell + cell / 2);
      }
    }
  }
  ctx.strokeStyle = "#d0d5dd"; ctx.strokeRect(margin, top, n * cell, n * cell);
  ctx.fillStyle = "#1d2433"; ctx.font = "10px sans-serif";
  if (showLabels) {
    ctx.textAlign = "right"; ctx.textBaseline = "middle";
    for (let i = 0; i < n; i++) ctx.fillText(String(labels[i]).slice(0, 10), margin - 4, top + i * cell + cell / 2);
    ctx.save();
    for (let j = 0; j < n; j++) {
      ctx.save(); ctx.translate(margin + j * cell + cell / 2, top + n * cell + 4); ctx.rotate(-Math.PI / 4);
      ctx.textAlign = "right"; ctx.fillText(String(labels[j]).slice(0, 10), 0, 0); ctx.restore();
    }
    ctx.restore();
  }
  if (opts.xlabel) { ctx.textAlign = "right"; ctx.fillStyle = "#667085"; ctx.fillText(opts.xlabel, w - 4, h - 4); }
}
function chartOn(canvas, config) {
  const id = canvas.id || (canvas.id = "c" + Math.random().toString(36).slice(2));
  if (CHARTS[id]) CHARTS[id].destroy();
  config.options = Object.assign({ responsive: false, animation: false, maintainAspectRatio: false }, config.options || {});
  CHARTS[id] = new Chart(canvas, config);
  return CHARTS[id];
}
function lineChart(canvas, title, epochs, series, ylabel) {
  return chartOn(canvas, {
    type: "line",
    data: { labels: epochs, datasets: series.map((s, k) => ({
      label: s.label, data: s.data, borderColor: s.color || PALETTE[k % PALETTE.length],
      backgroundColor: s.color || PALETTE[k % PALETTE.length], borderDash: s.dash || [],
      pointRadius: epochs.length > 40 ? 0 : 2, borderWidth: 2, spanGaps: true, tension: 0.1,
      yAxisID: s.axis || "y" })) },
    options: { plugins: { title: { display: true, text: title }, legend: { position: "bottom" } },
      scales: Object.assign({ x: { title: { display: true, text: "epoch" } },
        y: { title: { display: !!ylabel, text: ylabel || "" } } },
        series.some(s => s.axis === "y2") ? { y2: { position: "right", grid: { drawOnChartArea: false } } } : {}) },
  });
}
const errorBarsPlugin = {
  id: "errorBars",
  afterDatasetsDraw(chart) {
    const ctx = chart.ctx;
    chart.data.datasets.forEach((ds, di) => {
      const meta = chart.getDatasetMeta(di);
      if (!ds.intervals || meta.hidden) return;
      const y = chart.scales[meta.yAxisID];
      ctx.save(); ctx.strokeStyle = "#1d2433"; ctx.lineWidth = 1.5;
      meta.data.forEach((bar, i) => {
        const iv = ds.intervals[i];
        if (!iv || iv[0] === null || iv[1] === null) return;
        const lo = y.getPixelForValue(iv[0]), hi = y.getPixelForValue(iv[1]), x = bar.x, cap = 6;
        ctx.beginPath(); ctx.moveTo(x, lo); ctx.lineTo(x, hi);
        ctx.moveTo(x - cap, lo); ctx.lineTo(x + cap, lo); ctx.moveTo(x - cap, hi); ctx.lineTo(x + cap, hi);
        ctx.stroke();
      });
      ctx.restore();
    });
  },
};
"""

REPORT_JS = r"""
function metricLabel(m) { return m.replace(/_/g, " "); }
function verdict(d) {
  if (!d || d.diff === null || d.diff === undefined) return ["same", "no pairs"];
  if (d.improved) return ["improved", "better"];
  if (d.worse) return ["worse", "worse"];
  return ["same", "indistinguishable"];
}
function renderReport() {
  const R = JSON.parse(document.getElementById("report-data").textContent);
  const M = JSON.parse(document.getElementById("report-meta").textContent);
  const variants = R.variants_order.filter(v => R.variants[v]);
  const color = {}; variants.forEach((v, i) => color[v] = PALETTE[i % PALETTE.length]);
  const losses = {}; (M.variants || []).forEach(v => losses[v.name] = v.loss);
  document.title = "simtrain comparison " + M.id;
  const head = document.getElementById("head");
  head.append(el("h1", { text: "Comparison " + M.id }),
    el("div", { class: "muted", text: "dataset " + (M.dataset || "") + " \u00b7 " + R.classes.length + " classes \u00b7 seeds " +
      R.seeds.join(", ") + " \u00b7 status " + M.status + (M.finished_at ? " \u00b7 finished " + M.finished_at : "") }),
    el("div", { class: "muted", text: "similarity: " + JSON.stringify(R.similarity_spec) }),
    el("div", { class: "muted", text: "differences: variant \u2212 " + R.baseline + " on the same seed, " +
      Math.round(R.confidence * 100) + "% paired bootstrap interval over validation samples pooled over seeds (" +
      R.n_boot + " replicates)" }));

  // summary table
  const t = el("table", { id: "summary" });
  const hr = el("tr", {}, [el("th", { text: "variant" }), el("th", { text: "loss" }), el("th", { text: "runs" })]);
  for (const m of R.headline) {
    hr.append(el("th", { text: metricLabel(m) + " (" + (R.better[m] || "higher") + " is better)" }));
    hr.append(el("th", { text: "\u0394 vs " + R.baseline }));
  }
  t.append(hr);
  for (const v of variants) {
    const e = R.variants[v];
    const tr = el("tr", {}, [el("td", {}, [el("span", { style: "color:" + color[v], text: "\u25a0 " }), v]),
      el("td", { class: "mono", text: losses[v] ? losses[v].kind : "" }), el("td", { text: e.succeeded + "/" + e.runs })]);
    for (const m of R.headline) {
      const s = e.metrics[m];
      tr.append(el("td", { text: s ? fmt(s.mean) + " \u00b1 " + fmt(s.std) : "\u2013" }));
      const d = e.differences ? e.differences[m] : null;
      if (!d) { tr.append(el("td", { class: "muted", text: v === R.baseline ? "baseline" : "\u2013" })); continue; }
      const [cls, word] = verdict(d);
      tr.append(el("td", { class: cls, title: word, text: signed(d.diff) + " [" + signed(d.ci_low) + ", " + signed(d.ci_high) + "] " +
        (cls === "improved" ? "\u2713" : cls === "worse" ? "\u2717" : "\u2248") }));
    }
    t.append(tr);
  }
  document.getElementById("summary-wrap").append(t);

  // differences with intervals
  const others = variants.filter(v => v !== R.baseline);
  const diffs = document.getElementById("diffs");
  for (const m of R.headline) {
    const c = el("canvas", { id: "diff-" + m, width: 360, height: 240 });
    diffs.append(el("div", { class: "card" }, [c]));
    const ds = others.map(v => R.variants[v].differences[m]);
    const vals = ds.map(d => d.diff), ivs = ds.map(d => [d.ci_low, d.ci_high]);
    let lo = 0, hi = 0;
    ivs.forEach(iv => { if (iv[0] !== null) lo = Math.min(lo, iv[0]); if (iv[1] !== null) hi = Math.max(hi, iv[1]); });
    const pad = (hi - lo) * 0.1 || 0.01;
    chartOn(c, {
      type: "bar",
      data: { labels: others, datasets: [{ label: "\u0394 " + metricLabel(m), data: vals, intervals: ivs,
        backgroundColor: ds.map(d => d.improved ? "#2f9e4499" : d.worse ? "#e0313199" : "#adb5bd99"),
        borderColor: others.map(v => color[v]), borderWidth: 2 }] },
      options: { plugins: { legend: { display: false }, title: { display: true,
        text: "\u0394 " + metricLabel(m) + " vs " + R.baseline + " (" + (R.better[m] || "higher") + " is better)" } },
        scales: { y: { suggestedMin: lo - pad, suggestedMax: hi + pad } } },
      plugins: [errorBarsPlugin],
    });
  }
  if (!others.length) diffs.append(el("p", { class: "muted", text: "only the baseline was trained" }));

  // validation curves
  const curves = document.getElementById("curves");
  const keys = ["val_loss", "val_accuracy", "val_mistake_severity", "val_mean_similarity", "val_mean_class_distance",
                "val_group_accuracy", "train_loss"];
  for (const k of keys) {
    const series = variants.map(v => ({ label: v, color: color[v], epoch: R.variants[v].curves.epoch, data: R.variants[v].curves[k] }))
      .filter(s => s.data && s.data.some(x => x !== null));
    if (!series.length) continue;
    const epochs = Array.from(new Set(series.flatMap(s => s.epoch))).sort((a, b) => a - b);
    series.forEach(s => { const at = new Map(s.epoch.map((e, i) => [e, s.data[i]])); s.data = epochs.map(e => at.has(e) ? at.get(e) : null); });
    const c = el("canvas", { id: "curve-" + k, width: 420, height: 260 });
    curves.append(el("div", { class: "card" }, [c]));
    lineChart(c, k.replace(/_/g, " ") + " (mean over seeds)", epochs, series);
  }

  // confusion matrices
  const conf = document.getElementById("confusion");
  for (const v of variants) {
    const cm = R.variants[v].confusion_matrix;
    if (!cm) continue;
    const c = el("canvas", { id: "confusion-" + v });
    conf.append(el("div", { class: "card" }, [el("h3", { text: v + " (summed over seeds, rows = true class)" }), c]));
    drawHeatmap(c, cm, R.classes, { normalizeRows: true, size: 280, xlabel: "predicted" });
  }
  if (!conf.children.length) conf.append(el("p", { class: "muted", text: "too many classes to draw" }));

  // similarity
  const simWrap = document.getElementById("similarity");
  if (R.similarity) {
    const c = el("canvas", { id: "similarity-matrix" });
    simWrap.append(el("div", { class: "card" }, [el("h3", { text: "S[i, j]: how alike class i and class j are" }), c]));
    drawHeatmap(c, R.similarity, R.classes, { max: 1, size: 320 });
  } else simWrap.append(el("p", { class: "muted", text: "too many classes to draw" }));

  // runs
  const rt = el("table", { id: "runs" }, [el("tr", {}, ["variant", "seed", "status", "epochs", ...R.headline.map(metricLabel), "job"]
    .map(h => el("th", { text: h })))]);
  for (const r of R.runs) {
    const tr = el("tr", {}, [el("td", { text: r.variant }), el("td", { text: r.seed }),
      el("td", { class: "status-" + r.status, text: r.status + (r.error ? " (" + r.error.code + ")" : "") }),
      el("td", { text: r.epochs_completed === null ? "" : r.epochs_completed })]);
    for (const m of R.headline) tr.append(el("td", { text: r.metrics ? fmt(r.metrics[m]) : "\u2013" }));
    tr.append(el("td", { class: "mono muted", text: r.job_id }));
    rt.append(tr);
  }
  document.getElementById("runs-wrap").append(rt);
  document.body.dataset.ready = "1";
}
renderReport();
"""

REPORT_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>__STYLE__</style>
</head><body>
<header id="head"></header>
<h2>Summary</h2><div id="summary-wrap"></div>
<h2>Differences to the baseline</h2><div class="grid" id="diffs"></div>
<h2>Validation curves</h2><div class="grid" id="curves"></div>
<h2>Confusion matrices</h2><div class="grid" id="confusion"></div>
<h2>Similarity matrix</h2><div class="grid" id="similarity"></div>
<h2>Runs</h2><div id="runs-wrap"></div>
<script type="application/json" id="report-data">__DATA__</script>
<script type="application/json" id="report-meta">__META__</script>
<script>__CHART__</script>
<script>__COMMON__
__REPORT__</script>
</body></html>
"""


def render_report_html(report: dict[str, Any], meta: dict[str, Any], *, chart_js: str) -> str:
    """The comparison report page, self-contained (chart library and data inlined)."""
    title = f"simtrain comparison {meta.get('id', '')}"
    parts = {
        "__TITLE__": _html.escape(title),
        "__STYLE__": STYLE,
        "__DATA__": json_for_script(report),
        "__META__": json_for_script(meta),
        "__CHART__": _inline_js(chart_js),
        "__COMMON__": COMMON_JS,
        "__REPORT__": REPORT_JS,
    }
    return re.sub("|".join(map(re.escape, parts)), lambda m: parts[m.group(0)], REPORT_TEMPLATE)


JOBS_JS = r"""
const API = JSON.parse(document.getElementById("config").textContent).api_base;
const KEY_NAME = "simtrain.apiKey";
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "partial"]);
let selected = null, selectedTerminalShown = null, timer = null, reportUrl = null;
function apiKey() { return sessionStorage.getItem(KEY_NAME) || ""; }
function setMessage(text, bad) { const m = document.getElementById("message"); m.textContent = text; m.className = bad ? "worse" : "muted"; }
async function api(path) {
  const r = await fetch(API + path, { headers: { Authorization: "Bearer " + apiKey() } });
  if (r.status === 401) { const e = new Error("the API key was not accepted"); e.auth = true; throw e; }
  if (!r.ok) { let msg = "HTTP " + r.status; try { const b = await r.json(); msg = (b.error && b.error.message) || msg; } catch (_) {} throw new Error(msg); }
  return r;
}
function progressCell(fraction, text) {
  return el("td", {}, [el("span", { class: "bar" }, [el("span", { style: "width:" + Math.round(100 * (fraction || 0)) + "%" })]), text]);
}
function accuracyOf(job) {
  if (job.final_metrics && job.final_metrics.accuracy !== undefined) return job.final_metrics.accuracy;
  const lm = job.latest_metrics; return lm && lm.val ? lm.val.accuracy : null;
}
function renderJobs(items) {
  const body = document.getElementById("jobs-body"); body.replaceChildren();
  for (const j of items) {
    const meta = (j.spec && j.spec.metadata) || {};
    const tr = el("tr", { class: "clickable" + (j.id === selected ? " selected" : ""), "data-job": j.id,
      onclick: () => selectJob(j.id) }, [
      el("td", { class: "mono", title: j.id, text: j.id.slice(0, 8) }),
      el("td", { class: "status-" + j.status, text: j.status + (j.cancel_requested && j.status === "running" ? " (cancelling)" : "") }),
      el("td", { class: "mono", text: (j.spec && j.spec.loss ? j.spec.loss.kind : "") + (meta.variant ? " \u00b7 " + meta.variant : "") }),
      el("td", { text: j.dataset }),
      progressCell(j.progress.fraction, j.progress.epoch + "/" + j.progress.epochs),
      el("td", { text: fmt(accuracyOf(j)) }),
      el("td", { class: "muted", text: (j.created_at || "").replace("T", " ").slice(0, 19) })]);
    body.append(tr);
  }
  document.getElementById("jobs-empty").hidden = items.length > 0;
}
function renderComparisons(items) {
  const body = document.getElementById("comparisons-body"); body.replaceChildren();
  for (const c of items) {
    const done = TERMINAL.has(c.status);
    const btn = el("button", { text: "report", onclick: (ev) => { ev.stopPropagation(); openReport(c.id); } });
    if (!done) btn.disabled = true;
    body.append(el("tr", {}, [el("td", { class: "mono", title: c.id, text: c.id.slice(0, 8) }),
      el("td", { class: "status-" + c.status, text: c.status }),
      el("td", { text: c.variants.map(v => v.name).join(", ") }), el("td", { text: c.seeds.length }),
      progressCell(c.progress.fraction, c.progress.succeeded + c.progress.failed + c.progress.cancelled + "/" + c.progress.total),
      el("td", {}, [btn])]));
  }
  document.getElementById("comparisons-empty").hidden = items.length > 0;
}
async function selectJob(id) { selected = id; selectedTerminalShown = null; await refreshDetail(); highlight(); }
function highlight() { document.querySelectorAll("#jobs-body tr").forEach(tr => tr.classList.toggle("selected", tr.dataset.job === selected)); }
async function refreshDetail() {
  if (!selected) return;
  const job = await (await api("/jobs/" + selected)).json();
  if (selectedTerminalShown === job.id && TERMINAL.has(job.status)) return;
  const metrics = await (await api("/jobs/" + selected + "/metrics")).json();
  const box = document.getElementById("detail"); box.hidden = false;
  document.getElementById("detail-title").textContent = "Job " + job.id + " \u2014 " + job.status +
    (job.error ? " (" + job.error.code + ": " + job.error.message + ")" : "");
  const epochs = metrics.epochs.map(e => e.epoch);
  const get = (part, key) => metrics.epochs.map(e => (e.metrics[part] || {})[key] ?? null);
  lineChart(document.getElementById("job-loss"), "loss", epochs, [
    { label: "train loss", data: get("train", "loss") }, { label: "val loss", data: get("val", "loss") }]);
  lineChart(document.getElementById("job-acc"), "validation", epochs, [
    { label: "val accuracy", data: get("val", "accuracy") },
    { label: "val mean similarity", data: get("val", "mean_similarity") },
    { label: "val mistake severity", data: get("val", "mistake_severity"), dash: [4, 3] }]);
  const cmBox = document.getElementById("job-confusion-box");
  const cm = job.final_metrics && job.final_metrics.confusion_matrix;
  cmBox.hidden = !cm;
  if (cm) drawHeatmap(document.getElementById("job-confusion"), cm, job.classes, { normalizeRows: true, size: 300, xlabel: "predicted" });
  if (TERMINAL.has(job.status)) selectedTerminalShown = job.id;
}
async function openReport(id) {
  try {
    const html = await (await api("/comparisons/" + id + "/report")).text();
    const frame = document.getElementById("report-frame");
    frame.srcdoc = html; document.getElementById("report-box").hidden = false;
    if (reportUrl) URL.revokeObjectURL(reportUrl);
    reportUrl = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    const a = document.getElementById("report-download"); a.href = reportUrl; a.download = "comparison-" + id + ".html";
  } catch (e) { setMessage(e.message, true); }
}
async function refresh() {
  clearTimeout(timer);
  if (!apiKey()) { setMessage("enter an API key to see your jobs"); return; }
  let active = false;
  try {
    const jobs = (await (await api("/jobs?limit=50")).json()).items;
    renderJobs(jobs);
    active = jobs.some(j => !TERMINAL.has(j.status));
    let comps = [];
    try { comps = (await (await api("/comparisons?limit=20")).json()).items; } catch (e) { if (e.auth) throw e; }
    renderComparisons(comps);
    active = active || comps.some(c => !TERMINAL.has(c.status));
    await refreshDetail();
    setMessage((active ? "live: refreshing every 2 s" : "up to date") + " \u00b7 " + new Date().toLocaleTimeString());
  } catch (e) {
    setMessage(e.message, true);
    if (e.auth) return;
  }
  timer = setTimeout(refresh, active ? 2000 : 10000);
}
document.getElementById("key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = document.getElementById("api-key");
  sessionStorage.setItem(KEY_NAME, input.value.trim()); input.value = ""; refresh();
});
document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY_NAME); renderJobs([]); renderComparisons([]); document.getElementById("detail").hidden = true; refresh();
});
document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
refresh().then(() => { document.body.dataset.ready = "1"; });
"""

JOBS_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>simtrain jobs</title>
<style>__STYLE__</style>
</head><body>
<h1>simtrain jobs</h1>
<form id="key-form" autocomplete="off">
  <label>API key <input id="api-key" type="password" placeholder="st_..." size="40"></label>
  <button type="submit">use key</button> <button type="button" id="forget">forget key</button>
  <span class="muted">kept in this tab only (sessionStorage)</span>
</form>
<p id="message" class="muted"></p>
<h2>Jobs</h2>
<table id="jobs"><thead><tr><th>job</th><th>status</th><th>loss</th><th>dataset</th><th>progress</th>
<th>accuracy</th><th>created</th></tr></thead><tbody id="jobs-body"></tbody></table>
<p id="jobs-empty" class="muted">no jobs</p>
<section id="detail" hidden>
  <h2 id="detail-title"></h2>
  <div class="grid">
    <div class="card"><canvas id="job-loss" width="420" height="260"></canvas></div>
    <div class="card"><canvas id="job-acc" width="420" height="260"></canvas></div>
    <div class="card" id="job-confusion-box" hidden><h3>confusion matrix (rows = true class)</h3><canvas id="job-confusion"></canvas></div>
  </div>
</section>
<h2>Comparisons</h2>
<table id="comparisons"><thead><tr><th>comparison</th><th>status</th><th>variants</th><th>seeds</th><th>progress</th>
<th></th></tr></thead><tbody id="comparisons-body"></tbody></table>
<p id="comparisons-empty" class="muted">no comparisons</p>
<section id="report-box" hidden>
  <h2>Report <a id="report-download" href="#">download</a></h2>
  <iframe id="report-frame" title="comparison report" style="width:100%;height:900px;border:1px solid #d0d5dd"></iframe>
</section>
<script type="application/json" id="config">__CONFIG__</script>
<script src="__STATIC__/chart.umd.min.js"></script>
<script>__COMMON__
__JOBS__</script>
</body></html>
"""


def render_jobs_page(*, static_base: str = "/static", api_base: str = "/v1") -> str:
    """The jobs page (list, live progress, a job's curves and confusion matrix, comparison reports)."""
    parts = {
        "__STYLE__": STYLE,
        "__CONFIG__": json_for_script({"api_base": api_base}),
        "__STATIC__": _html.escape(static_base.rstrip("/"), quote=True),
        "__COMMON__": COMMON_JS,
        "__JOBS__": JOBS_JS,
    }
    return re.sub("|".join(map(re.escape, parts)), lambda m: parts[m.group(0)], JOBS_TEMPLATE)
