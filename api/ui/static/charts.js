/* simtrain pages: drawing helpers shared by the report and the console's job page (needs window.Chart):
   fmt / signed / el, drawHeatmap (canvas heatmap), chartOn / lineChart (Chart.js), errorBarsPlugin.
   lineChart's last argument, `options`, is merged over the chart's options (e.g. {responsive: true,
   maintainAspectRatio: false} for a chart that fills its sized container). */
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
function lineChart(canvas, title, epochs, series, ylabel, options) {
  const chart = {
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
  };
  Object.assign(chart.options, options || {});
  return chartOn(canvas, chart);
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
