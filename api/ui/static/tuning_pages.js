/* simtrain console, tuning studies: the list (/ui/tuning) or, with #config study_id, one study
   (/ui/tuning/{id}): status and progress (live until it ends), the best trial, every trial (with its job's
   page), cancel, and the study's report (GET /v1/tuning/{id}/report: Optuna's plots and the trials) in a
   frame, loaded again when the study ends, and as a download, and Delete (DELETE /v1/tuning/{id}, with its
   trial jobs and their files; polled until it and every trial's job have ended). Needs console.js and
   console_lists.js. Text only through textContent. */
"use strict";
(function () {
  const S = window.simtrain, L = window.simtrainLists;
  if (!S.requireSignIn()) return;
  const $ = (id) => document.getElementById(id);
  const ENDED = new Set(["succeeded", "failed", "cancelled"]);
  const id = S.config.study_id;

  function value(x) { return x === null || x === undefined ? "\u2013" : Number(x).toFixed(4); }
  function params(p) { return Object.entries(p || {}).map(([k, v]) => k + " = " + v).join(", "); }
  function objective(o) { return (o.direction || "") + " " + (o.metric || ""); }

  function listRow(s) {
    const p = s.progress;
    return S.el("tr", {}, [
      S.el("td", { class: "mono" }, [L.link("/ui/tuning/" + encodeURIComponent(s.id), s.id.slice(0, 8))]),
      S.el("td", {}, [S.statusBadge(s.status)]),
      S.el("td", { text: s.dataset }),
      S.el("td", { text: objective(s.objective) }),
      S.el("td", { text: (p.complete + p.pruned + p.failed) + "/" + p.trials }),
      S.el("td", { text: s.best_trial ? value(s.best_trial.value) : "\u2013" }),
      S.el("td", { class: "muted", text: S.fmtTime(s.created_at) }),
    ]);
  }

  function showList() {
    L.listPage({ path: "/tuning", table: $("studies"), empty: $("list-empty"), more: $("more"),
      message: $("list-message"), row: listRow, active: (s) => !ENDED.has(s.status) });
  }

  // ------------------------------------------------------------------------------------------ one study
  let reportFor = null;

  function jobLink(jobId) {
    return jobId ? L.link("/ui/jobs/" + encodeURIComponent(jobId), jobId.slice(0, 8)) : "\u2013";
  }

  function trialRow(t) {
    return S.el("tr", {}, [
      S.el("td", { text: String(t.number) }), S.el("td", {}, [S.statusBadge(t.state)]), S.el("td", { text: value(t.value) }),
      S.el("td", { class: "mono" }, [jobLink(t.job_id)]), S.el("td", { text: t.epoch + "/" + t.epochs }),
      S.el("td", { class: "mono wrap", text: params(t.params) }),
      S.el("td", { class: "wrap", text: t.error ? (t.error.code || "") + " " + (t.error.message || "") : "" })]);
  }

  function render(s) {
    $("detail").hidden = false;
    $("item-id").textContent = s.id;
    $("item-status").replaceChildren(S.statusBadge(s.status));
    const p = s.progress;
    $("item-progress").textContent = p.asked + " of " + p.trials + " trials asked: " + p.complete + " complete, " +
      p.pruned + " pruned, " + p.failed + " failed, " + p.running + " running";
    L.summary($("summary"), [["dataset", s.dataset], ["objective", objective(s.objective)],
      ["search space", Object.keys(s.search_space).join(", ")], ["sampler / pruner", s.sampler + " / " + s.pruner],
      ["parallel", s.parallel], ["created", S.fmtTime(s.created_at)], ["finished", S.fmtTime(s.finished_at)]]);
    const b = s.best_trial;
    $("best-empty").hidden = !!b;
    $("best").hidden = !b;
    if (b) L.summary($("best"), [["trial", b.number], [s.objective.metric || "value", value(b.value)], ["job", jobLink(b.job_id)], ["params", params(b.params)]]);
    $("trials").tBodies[0].replaceChildren(...s.trials.map(trialRow));
    $("cancel").disabled = ENDED.has(s.status) || s.status === "cancelling";
  }

  // the report once, and again when the study has ended
  async function showReport(s) {
    const key = ENDED.has(s.status) ? "ended" : "running";
    if (reportFor === key) return;
    reportFor = key;
    await L.frameReport($("report-frame"), s.report_url);
    $("report-note").textContent = "The report, as GET " + s.report_url + " sends it (offline page)" +
      (key === "running" ? "; loaded again when the study ends." : ".");
  }

  async function loaded(s) {
    try { await showReport(s); } catch (e) { $("report-note").textContent = e.message; }
  }

  // deletable: it and every trial's job have ended
  function ended(s) {
    return ENDED.has(s.status) && (s.trials || []).every((t) => !t.job_status || S.TERMINAL.has(t.job_status));
  }
  const jobs = (s) => (s.trials || []).filter((t) => t.job_id).length;

  const remove = { ended, list: "/ui/tuning",
    ask: (s) => "Delete tuning study " + s.id + " with its " + jobs(s) + " trial jobs and their files " +
      "(metrics, events, checkpoints, artifacts)? This cannot be undone.",
    done: (s) => "Deleted tuning study " + s.id + " and its " + jobs(s) + " trial jobs." };

  function showOne() {
    const path = "/tuning/" + encodeURIComponent(id);
    L.detailPage({ path, render, loaded, remove, active: (s) => !ended(s),
      download: () => [path + "/report?download=1", "tuning-" + id + ".html"] });
  }

  if (id) showOne(); else showList();
})();
