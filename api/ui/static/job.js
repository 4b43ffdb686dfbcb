/* simtrain job page (/ui/jobs/{id}, #config job_id): reads the job, its epoch metrics, events, artifacts and
   checkpoints from the API, then follows the job's Server-Sent Events (events/stream?after=<last id>):
   an `epoch` event extends the curves, a `state` event reads the job again (status, buttons, final
   metrics, confusion matrix, artifacts, checkpoints). The stream is reopened while the job is not
   finished; a slow poll backs it up. A 404 shows "Job not found". Delete shows once the job has ended: after
   a window.confirm it sends DELETE /v1/jobs/{id}, and on success leaves a notice (sessionStorage
   simtrain.notice, shown by jobs.js) and goes to /ui/jobs; an error (409: still needed) shows in
   #job-message. Sets body[data-ready=1] once the first read is drawn. Needs console.js and charts.js
   (Chart.js, drawHeatmap). */
"use strict";
(function () {
  if (!simtrain.requireSignIn()) return;
  const { api, el, fmtTime, statusBadge, TERMINAL, download, stream } = simtrain;
  const ID = String(simtrain.config.job_id);
  const P = "/jobs/" + encodeURIComponent(ID);
  const MAX_EVENTS = 500, POLL_MS = 10000;
  const $ = (id) => document.getElementById(id);
  const epochs = new Map();
  let job = null, lastEventId = 0, stopStream = null, pollTimer = null, finalShown = false;

  function say(text, bad) { $("job-message").textContent = text; $("job-message").className = bad ? "error" : "muted"; }
  function ready() { document.body.dataset.ready = "1"; }
  function bytes(n) {
    if (typeof n !== "number") return "\u2013";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }
  function num(v) { return typeof v === "number" ? (Number.isInteger(v) ? String(v) : v.toFixed(4)) : "\u2013"; }
  function compact(v) { return v === null || v === undefined ? "\u2013" : typeof v === "object" ? JSON.stringify(v) : String(v); }
  function fill(table, rows) {
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;
  }

  // -- the job: header, buttons, spec -----------------------------------------------------------------
  function renderJob() {
    const s = job.status;
    const note = job.cancel_requested && !TERMINAL.has(s) ? " (cancelling)" : "";
    $("job-status").replaceChildren(statusBadge(s, note));
    const p = job.progress;
    $("job-progress").textContent = "epoch " + p.epoch + " of " + p.epochs +
      (p.eta_seconds ? " \u00b7 about " + Math.ceil(p.eta_seconds) + " s left" : "") +
      (job.error ? " \u00b7 " + job.error.code + ": " + job.error.message : "");
    $("cancel").disabled = TERMINAL.has(s) || job.cancel_requested;
    $("pause").disabled = !(s === "queued" || s === "running") || job.cancel_requested;
    $("resume").disabled = s !== "paused";
    $("delete").hidden = !TERMINAL.has(s);
    document.body.dataset.status = s;
  }

  function renderSpec() {
    const spec = job.spec || {}, t = spec.training || {}, m = spec.model || {};
    const classes = job.classes || [];
    const rows = [
      ["dataset", job.dataset],
      ["classes", classes.length + ": " + classes.slice(0, 12).join(", ") + (classes.length > 12 ? ", \u2026" : "")],
      ["similarity", spec.similarity ? spec.similarity.kind : "none"],
      ["loss", compact(spec.loss)],
      ["model", compact(m)],
      ["training", "epochs " + t.epochs + ", batch " + t.batch_size + ", " + t.optimizer + " lr " + t.learning_rate +
        ", seed " + compact(t.seed)],
      ["metadata", compact(spec.metadata)],
      ["created", fmtTime(job.created_at)],
      ["started", fmtTime(job.started_at)],
      ["finished", fmtTime(job.finished_at)],
      ["attempts", job.attempts + " of " + job.max_attempts + (job.device ? " \u00b7 " + job.device : "")],
    ];
    const items = [];
    for (const [k, v] of rows) items.push(el("dt", { text: k }), el("dd", { text: v }));
    items.push(el("dt", { text: "spec" }), el("dd", {}, [el("details", {}, [el("summary", { text: "as JSON" }),
      el("pre", { class: "json", text: JSON.stringify(spec, null, 2) })])]));
    $("spec").replaceChildren(...items);
  }

  // -- curves -----------------------------------------------------------------------------------------
  function drawCurves() {
    const recs = [...epochs.entries()].sort((a, b) => a[0] - b[0]);
    $("curves-note").hidden = recs.length > 0;
    const labels = recs.map((r) => r[0]);
    const get = (part, key) => recs.map((r) => ((r[1] || {})[part] || {})[key] ?? null);
    plot($("chart-loss"), "loss", labels, [
      { label: "train loss", data: get("train", "loss") }, { label: "val loss", data: get("val", "loss") }]);
    plot($("chart-val"), "validation", labels, [
      { label: "val accuracy", data: get("val", "accuracy") },
      { label: "val mean similarity", data: get("val", "mean_similarity") },
      { label: "val mistake severity", data: get("val", "mistake_severity"), dash: [4, 3] }]);
  }
  function plot(canvas, title, labels, series) {
    const chart = Chart.getChart(canvas);
    if (chart && chart.data.datasets.length === series.length) {
      chart.data.labels = labels;
      series.forEach((s, i) => { chart.data.datasets[i].data = s.data; });
      chart.update();
      return;
    }
    lineChart(canvas, title, labels, series, "", { responsive: true, maintainAspectRatio: false });
  }

  // -- final metrics and confusion matrix -------------------------------------------------------------
  function metricRows(obj, prefix, out) {
    for (const [k, v] of Object.entries(obj || {})) {
      if (out.length >= 200) break;
      if (typeof v === "number" || typeof v === "string" || typeof v === "boolean") {
        out.push(el("tr", {}, [el("td", { class: "mono", text: prefix + k }), el("td", { text: typeof v === "number" ? num(v) : String(v) })]));
      } else if (v && typeof v === "object" && !Array.isArray(v) && !prefix) {
        metricRows(v, k + ".", out);
      }
    }
    return out;
  }
  function renderFinal() {
    const fm = job.final_metrics;
    const rows = fm ? metricRows(fm, "", []) : [];
    fill($("final-metrics"), rows);
    $("final-empty").hidden = rows.length > 0;
    const cm = fm && Array.isArray(fm.confusion_matrix) ? fm.confusion_matrix : null;
    $("confusion-box").hidden = !cm;
    $("confusion-empty").hidden = !!cm;
    if (!cm) return;
    const box = $("confusion-box");
    const size = Math.max(120, Math.min(320, box.clientWidth - 90));
    drawHeatmap($("confusion"), cm, job.classes, { normalizeRows: true, size, xlabel: "predicted" });
    const head = el("tr", {}, [el("th", { scope: "col", text: "true \\ predicted" }), ...job.classes.map((c) => el("th", { scope: "col", text: c }))]);
    const rows2 = cm.map((r, i) => el("tr", {}, [el("th", { scope: "row", text: job.classes[i] ?? String(i) }), ...r.map((v) => el("td", { text: String(v) }))]));
    $("confusion-table").replaceChildren(el("thead", {}, [head]), el("tbody", {}, rows2));
  }

  // -- artifacts and checkpoints ----------------------------------------------------------------------
  function downloadButton(path, filename, label, description) {
    const b = el("button", { type: "button", class: "download", "data-name": filename, text: label,
      "aria-label": description || null });
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await download(path, filename); say("Downloaded " + filename + "."); } catch (e) { say("Download failed: " + e.message, true); }
      b.disabled = false;
    });
    return b;
  }
  async function loadArtifacts() {
    const items = (await api(P + "/artifacts")).items;
    fill($("artifacts"), items.map((a) => el("tr", { "data-artifact": a.name }, [
      el("td", { class: "mono", text: a.name }), el("td", { text: bytes(a.size_bytes) }),
      el("td", { class: "mono", title: a.sha256, text: a.sha256.slice(0, 12) }),
      el("td", {}, [downloadButton(P + "/artifacts/" + encodeURIComponent(a.name), a.name, "Download " + a.name)])])));
    $("artifacts-empty").hidden = items.length > 0;
  }
  async function loadCheckpoints() {
    let items = [];
    try {
      items = (await api(P + "/checkpoints")).items || [];
    } catch (e) {
      if (e.status !== 404) throw e; // no checkpoints route (or none for this job): "No checkpoints."
    }
    const short = ID.slice(0, 8);
    fill($("checkpoints"), items.map((c) => {
      const base = P + "/checkpoints/" + encodeURIComponent(c.epoch);
      const mt = c.metrics || {};
      return el("tr", { "data-epoch": String(c.epoch) }, [
        el("td", { text: String(c.epoch) }), el("td", { text: compact(c.step) }),
        el("td", { text: num(mt.val_loss) }), el("td", { text: num(mt.val_accuracy) }),
        el("td", { text: bytes(c.size_bytes) }), el("td", { class: "muted", text: fmtTime(c.created_at) }),
        el("td", { text: (c.kept_as || []).join(", ") }),
        el("td", { class: "buttons" }, [
          downloadButton(base + "/model.safetensors", "job-" + short + "-epoch-" + c.epoch + ".safetensors", "weights",
            "Download the weights of epoch " + c.epoch),
          downloadButton(base + "/model.json", "job-" + short + "-epoch-" + c.epoch + ".json", "model.json",
            "Download model.json of epoch " + c.epoch)])]);
    }));
    $("checkpoints-empty").hidden = items.length > 0;
  }

  // -- events and the live stream ---------------------------------------------------------------------
  function addEvents(list) {
    const body = $("events").tBodies[0];
    for (const e of list) {
      body.append(el("tr", { "data-kind": e.kind }, [el("td", { class: "muted", text: fmtTime(e.created_at) }),
        el("td", { text: e.kind }), el("td", { text: e.message })]));
      if (e.id > lastEventId) lastEventId = e.id;
      if (e.kind === "epoch" && e.data && typeof e.data.epoch === "number") epochs.set(e.data.epoch, e.data);
    }
    while (body.rows.length > MAX_EVENTS) body.deleteRow(0);
  }

  async function refreshJob() {
    const before = job.status;
    job = await api(P);
    renderJob();
    if (job.status !== before) renderSpec();
    if (TERMINAL.has(job.status) && !finalShown) {
      finalShown = true;
      renderFinal();
      await Promise.all([loadArtifacts(), loadCheckpoints()]);
    } else if (!TERMINAL.has(job.status)) {
      await loadCheckpoints();
    }
  }

  function follow() {
    if (stopStream) stopStream();
    let curvesDirty = false;
    stopStream = stream(P + "/events/stream?after=" + lastEventId, {
      onEvent(ev) {
        if (!ev.data || typeof ev.data !== "object" || ev.event === "timeout") return;
        addEvents([ev.data]);
        if (ev.event === "epoch") { curvesDirty = true; drawCurves(); refreshJob().catch(() => {}); }
        if (ev.event === "state") refreshJob().catch((e) => say(e.message, true));
      },
      onEnd(err) {
        stopStream = null;
        if (curvesDirty) drawCurves();
        refreshJob().then(() => {
          if (!TERMINAL.has(job.status)) setTimeout(follow, err ? 3000 : 300);
        }, () => setTimeout(follow, 3000));
      },
    });
  }

  function poll() {
    clearTimeout(pollTimer);
    if (job && TERMINAL.has(job.status)) return;
    refreshJob().catch(() => {}).finally(() => { pollTimer = setTimeout(poll, POLL_MS); });
  }

  // -- actions ----------------------------------------------------------------------------------------
  function action(name, verb) {
    $(name).addEventListener("click", async () => {
      $(name).disabled = true;
      try {
        job = await api(P + "/" + name, { method: "POST" });
        renderJob();
        say(verb + " the job.");
        if (name === "resume" && !stopStream) follow();
      } catch (e) {
        say(e.message, true);
        await refreshJob().catch(() => {});
      }
    });
  }
  action("cancel", "Asked to cancel");
  action("pause", "Asked to pause");
  action("resume", "Resumed");

  $("delete").addEventListener("click", async () => {
    const b = $("delete");
    if (!window.confirm("Delete job " + ID + " with its metrics, events, checkpoints and artifacts? This cannot be undone.")) return;
    b.disabled = true;
    try {
      await api(P, { method: "DELETE" });
      simtrain.leaveNotice("Deleted job " + ID + ".");
      location.assign("/ui/jobs");
    } catch (e) {
      say("Could not delete the job: " + e.message, true);
      b.disabled = false;
      b.focus();
    }
  });

  // -- start ------------------------------------------------------------------------------------------
  async function allEvents() {
    const list = [];
    for (let page = 0, after = 0; page < 10; page++) {
      const r = await api(P + "/events?limit=1000&after=" + after);
      list.push(...r.items);
      if (r.items.length < 1000) break;
      after = r.last_id;
    }
    return list;
  }
  function notFound(e) {
    $("not-found").hidden = false;
    $("not-found-message").textContent = e.message;
    document.title = "Job not found \u00b7 simtrain";
    ready();
  }

  async function start() {
    try {
      job = await api(P);
    } catch (e) {
      if (e.status === 404 || e.status === 422) return notFound(e);
      say("Could not load the job: " + e.message, true);
      $("job").hidden = false;
      return ready();
    }
    $("job").hidden = false;
    $("job-id").textContent = job.id;
    renderJob();
    renderSpec();
    const [metrics, events] = await Promise.all([api(P + "/metrics"), allEvents()]);
    for (const r of metrics.epochs) epochs.set(r.epoch, r.metrics);
    addEvents(events);
    drawCurves();
    if (TERMINAL.has(job.status)) { finalShown = true; renderFinal(); }
    await Promise.all([loadArtifacts(), loadCheckpoints()]);
    ready();
    if (!TERMINAL.has(job.status)) { follow(); pollTimer = setTimeout(poll, POLL_MS); }
  }
  start().catch((e) => { say(e.message, true); ready(); });
})();
