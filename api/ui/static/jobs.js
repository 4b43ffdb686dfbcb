/* simtrain jobs page: asks for an API key (sessionStorage only), lists jobs and comparisons,
   polls the JSON API (#config api_base), shows a job's curves and confusion matrix and a comparison's
   report in a frame; sets body[data-ready=1] after the first refresh. Needs charts.js. */
"use strict";
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
