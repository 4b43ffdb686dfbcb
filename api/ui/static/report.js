/* simtrain comparison report: draws the page from the #report-data / #report-meta JSON
   (text only through textContent), then sets body[data-ready=1]. Needs charts.js. A swept comparison
   (report.sweep) also gets, per headline metric, the metric against the first axis with its intervals
   (one line per variant and value of the second axis, the baseline dashed) and the sweep table. */
"use strict";
function metricLabel(m) { return m.replace(/_/g, " "); }
// the interval's mark: does the two-level bootstrap interval exclude 0, and on which side
function intervalMark(d) {
  if (!d || d.diff === null || d.diff === undefined) return ["same", "no pairs"];
  if (d.improved) return ["improved", "interval excludes 0 on the better side"];
  if (d.worse) return ["worse", "interval excludes 0 on the worse side"];
  return ["same", "interval contains 0"];
}
// the verdict: the paired test across seeds after Holm's correction (reports before version 2 have none)
const TEST_NAMES = { wilcoxon_signed_rank: "Wilcoxon signed-rank", paired_t_test: "paired t-test" };
function testLabel(t) { return t ? (TEST_NAMES[t] || t) : "no test"; }
function fmtP(p) { return p === null || p === undefined ? "\u2013" : p < 0.001 ? "<0.001" : Number(p).toFixed(3); }
function verdictClass(w) { return w === "better" ? "verdict v-better" : w === "worse" ? "verdict v-worse" : "verdict v-none"; }
function verdictLine(d) {
  if (!d || !d.verdict) return "";
  return d.verdict + " \u00b7 " + testLabel(d.test) + (d.test ? ", p(Holm) " + fmtP(d.p_adjusted) : "");
}
function statsNote(R) {
  const S = R.statistics;
  if (!S) return "verdicts: none (a report made before the paired test across seeds)";
  return "verdict (better / worse / no evidence): " + Object.entries(TEST_NAMES).reduce((t, [k, v]) => t.split(k).join(v), S.test_rule) + "; Holm's correction across " +
    S.correction_family + "; alpha " + S.alpha + ". Effect size: " + S.effect_size + ".";
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
      (R.statistics ? R.statistics.interval_detail : Math.round(R.confidence * 100) +
        "% paired bootstrap interval over validation samples pooled over seeds (" + R.n_boot + " replicates)") +
      " (\u2713 / \u2717: the interval excludes 0; the verdict below it: the paired test across seeds)" }));

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
      const [cls, word] = intervalMark(d);
      const cell = el("td", { class: cls, title: word }, [signed(d.diff) + " [" + signed(d.ci_low) + ", " + signed(d.ci_high) + "] " +
        (cls === "improved" ? "\u2713" : cls === "worse" ? "\u2717" : "\u2248")]);
      if (d.verdict) cell.append(el("div", { class: verdictClass(d.verdict), title: d.verdict_reason || "", text: verdictLine(d) }));
      tr.append(cell);
    }
    t.append(tr);
  }
  document.getElementById("summary-wrap").append(t);
  renderStatistics(R, variants);
  if (R.sweep) renderSweep(R);

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
      data: { labels: others.map((v, i) => ds[i].verdict ? v + " (" + ds[i].verdict + ")" : v),
        datasets: [{ label: "\u0394 " + metricLabel(m), data: vals, intervals: ivs,
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
// per variant and headline metric: the per-seed differences, the interval, the test, p-values, verdict
function renderStatistics(R, variants) {
  document.getElementById("stats-note").textContent = statsNote(R);
  const head = ["variant", "metric", "per-seed \u0394", "\u0394 [interval]", "d_z", "test", "p", "p (Holm)", "verdict", "why"];
  const t = el("table", { id: "stats" }, [el("tr", {}, head.map(h => el("th", { text: h })))]);
  for (const v of variants.filter(v => v !== R.baseline && R.variants[v].differences)) {
    for (const m of R.headline) {
      const d = R.variants[v].differences[m];
      if (!d) continue;
      const es = d.effect_size || {};
      t.append(el("tr", {}, [el("td", { text: v }), el("td", { text: metricLabel(m) }),
        el("td", { class: "mono", text: (d.per_seed || []).map(p => signed(p.diff)).join(" ") }),
        el("td", { text: signed(d.diff) + " [" + signed(d.ci_low) + ", " + signed(d.ci_high) + "]" }),
        el("td", { text: fmt(es.d_z, 2) }), el("td", { text: d.verdict ? testLabel(d.test) : "\u2013" }),
        el("td", { text: fmtP(d.p_value) }), el("td", { text: fmtP(d.p_adjusted) }),
        el("td", { class: verdictClass(d.verdict), text: d.verdict || "\u2013" }),
        el("td", { class: "muted why", text: d.verdict_reason || "" })]));
    }
  }
  document.getElementById("stats-wrap").append(t);
}
// the sweep: per headline metric, mean and interval at every grid point, coloured by the verdict
const VERDICT_COLOR = { better: "#2f9e44", worse: "#e03131" };
function sweepSeries(S, m) {
  const [ax, ax2] = S.axes, groups = new Map();
  for (const row of S.tables[m] || []) {
    const key = row.variant + (ax2 ? " \u00b7 " + ax2.name + "=" + JSON.stringify(row.point[ax2.name]) : "");
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(row);
  }
  const numeric = ax.values.every(v => typeof v === "number");
  return Array.from(groups, ([label, rows], k) => {
    const at = new Map(rows.map(r => [JSON.stringify(r.point[ax.name]), r]));
    const ordered = ax.values.map(v => at.get(JSON.stringify(v)) || null);
    const color = PALETTE[k % PALETTE.length];
    return { label: label, borderColor: color, backgroundColor: color, borderWidth: 2, spanGaps: true,
      pointRadius: 4, pointBackgroundColor: ordered.map(r => (r && VERDICT_COLOR[r.verdict]) || color),
      data: ordered.map((r, i) => numeric ? { x: ax.values[i], y: r ? r.mean : null } : (r ? r.mean : null)),
      intervals: ordered.map(r => r ? [r.ci_low, r.ci_high] : null) };
  });
}
function sweepChart(R, m) {
  const S = R.sweep, ax = S.axes[0], numeric = ax.values.every(v => typeof v === "number");
  const series = sweepSeries(S, m), b = (S.baseline || {})[m] || {};
  if (b.mean !== null && b.mean !== undefined) {
    const xs = numeric ? [Math.min(...ax.values), Math.max(...ax.values)] : ax.values;
    series.push({ label: R.baseline + " (mean)", borderColor: "#495057", borderDash: [6, 4], borderWidth: 1.5,
      pointRadius: 0, data: xs.map(x => numeric ? { x: x, y: b.mean } : b.mean) });
  }
  const ys = series.flatMap(s => (s.intervals || []).flat().concat(s.data.map(p => p !== null && typeof p === "object" ? p.y : p)))
    .filter(y => y !== null && y !== undefined && Number.isFinite(y));
  const lo = Math.min(...ys), hi = Math.max(...ys), pad = (hi - lo) * 0.05 || 0.01;
  const c = el("canvas", { id: "sweep-" + m, width: 420, height: 280 });
  document.getElementById("sweep").append(el("div", { class: "card" }, [c]));
  chartOn(c, {
    type: "line",
    data: numeric ? { datasets: series } : { labels: ax.values.map(v => JSON.stringify(v)), datasets: series },
    options: { plugins: { legend: { position: "bottom" }, title: { display: true,
      text: metricLabel(m) + " (" + (R.better[m] || "higher") + " is better) vs " + ax.name } },
      scales: { x: Object.assign(numeric ? { type: "linear" } : {}, { title: { display: true, text: ax.name + " = " + ax.path } }),
        y: ys.length ? { suggestedMin: lo - pad, suggestedMax: hi + pad } : {} } },
    plugins: [errorBarsPlugin],
  });
}
function renderSweep(R) {
  const S = R.sweep;
  document.getElementById("sweep-section").hidden = false;
  document.getElementById("sweep-note").textContent = "axes: " + S.axes.map(a => a.name + " = " + a.path + " in " +
    JSON.stringify(a.values)).join("; ") + ". Points: mean over seeds, bars: " + S.interval_detail +
    "; green / red: the verdict against " + R.baseline + " is better / worse.";
  for (const m of R.headline) sweepChart(R, m);
  const head = ["variant", ...S.axes.map(a => a.name), ...R.headline.flatMap(m => [metricLabel(m) + " [interval]", "\u0394 \u00b7 verdict"])];
  const t = el("table", { id: "sweep-table" }, [el("tr", {}, head.map(h => el("th", { text: h })))]);
  const first = S.tables[R.headline[0]] || [];
  first.forEach((row, i) => {
    const tr = el("tr", {}, [el("td", { text: row.variant }), ...S.axes.map(a => el("td", { text: JSON.stringify(row.point[a.name]) }))]);
    for (const m of R.headline) {
      const r = (S.tables[m] || [])[i] || {};
      tr.append(el("td", { text: fmt(r.mean) + " [" + fmt(r.ci_low) + ", " + fmt(r.ci_high) + "]" }));
      tr.append(el("td", { class: verdictClass(r.verdict), title: r.verdict_reason || "",
        text: signed(r.diff) + " \u00b7 " + (r.verdict || "\u2013") + (r.test ? " (" + testLabel(r.test) + ", p(Holm) " + fmtP(r.p_adjusted) + ")" : "") }));
    }
    t.append(tr);
  });
  document.getElementById("sweep-wrap").append(t);
}
renderReport();
