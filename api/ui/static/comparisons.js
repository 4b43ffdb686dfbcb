/* simtrain console, comparisons: the list (/ui/comparisons) or, with #config comparison_id, one comparison
   (/ui/comparisons/{id}): status and progress (live until it ends), variants, child jobs (links to their
   job pages), cancel, and once it has ended its report (GET /v1/comparisons/{id}/report) in a frame and
   as a download, and Delete (DELETE /v1/comparisons/{id}, with its child jobs and their files; polled
   until it and every child have ended). Needs console.js and console_lists.js. Text only through
   textContent. */
"use strict";
(function () {
  const S = window.simtrain, L = window.simtrainLists;
  if (!S.requireSignIn()) return;
  const $ = (id) => document.getElementById(id);
  const ENDED = new Set(["succeeded", "partial", "failed", "cancelled"]);
  const id = S.config.comparison_id;

  function progressCell(p) {
    const done = p.succeeded + p.failed + p.cancelled;
    const bar = S.el("progress", { max: "1", "aria-label": done + " of " + p.total + " children ended" });
    bar.value = p.fraction;
    return S.el("td", {}, [bar, " " + done + "/" + p.total]);
  }

  function listRow(c) {
    return S.el("tr", {}, [
      S.el("td", { class: "mono" }, [L.link("/ui/comparisons/" + encodeURIComponent(c.id), c.id.slice(0, 8))]),
      S.el("td", {}, [S.statusBadge(c.status)]),
      S.el("td", { text: c.dataset }),
      S.el("td", { class: "wrap", text: c.variants.map(v => v.name).join(", ") }),
      S.el("td", { text: String(c.seeds.length) }),
      progressCell(c.progress),
      S.el("td", { class: "muted", text: S.fmtTime(c.created_at) }),
    ]);
  }

  function showList() {
    L.listPage({ path: "/comparisons", table: $("comparisons"), empty: $("list-empty"), more: $("more"),
      message: $("list-message"), row: listRow, active: (c) => !ENDED.has(c.status) });
  }

  // ----------------------------------------------------------------------------------- one comparison
  let reportShown = false;

  function childRow(ch) {
    const acc = ch.metrics && ch.metrics.accuracy !== undefined ? Number(ch.metrics.accuracy).toFixed(4) : "\u2013";
    return S.el("tr", {}, [
      S.el("td", { class: "mono" }, [L.link("/ui/jobs/" + encodeURIComponent(ch.job_id), ch.job_id.slice(0, 8))]),
      S.el("td", { text: ch.variant }), S.el("td", { text: String(ch.seed) }),
      S.el("td", {}, [S.statusBadge(ch.status)]), S.el("td", { text: ch.epoch + "/" + ch.epochs }),
      S.el("td", { text: acc })]);
  }

  function variantRow(v) {
    return S.el("tr", {}, [S.el("td", { text: v.name }), S.el("td", { class: "mono wrap", text: JSON.stringify(v.loss) }),
      S.el("td", { class: "mono wrap", text: v.overrides ? JSON.stringify(v.overrides) : "\u2013" })]);
  }

  function render(c) {
    $("detail").hidden = false;
    $("item-id").textContent = c.id;
    $("item-status").replaceChildren(S.statusBadge(c.status));
    const p = c.progress;
    $("item-progress").textContent = (p.succeeded + p.failed + p.cancelled) + " of " + p.total + " child jobs ended";
    L.summary($("summary"), [["dataset", c.dataset], ["classes", c.classes.join(", ")], ["seeds", c.seeds.join(", ")],
      ["created", S.fmtTime(c.created_at)], ["finished", S.fmtTime(c.finished_at)]]);
    $("variants").tBodies[0].replaceChildren(...c.variants.map(variantRow));
    $("children").tBodies[0].replaceChildren(...c.children.map(childRow));
    $("cancel").disabled = ENDED.has(c.status) || c.status === "cancelling";
    $("download-report").disabled = !c.report_url;
  }

  async function showReport(c) {
    if (reportShown || !c.report_url) return;
    reportShown = true;
    $("report-note").textContent = "The report, as GET " + c.report_url + " sends it (offline page).";
    await L.frameReport($("report-frame"), c.report_url);
  }

  // deletable: it and every child job have ended
  function ended(c) { return ENDED.has(c.status) && (c.children || []).every((ch) => S.TERMINAL.has(ch.status)); }

  const remove = { ended, list: "/ui/comparisons",
    ask: (c) => "Delete comparison " + c.id + " with its " + c.children.length + " child jobs and their files " +
      "(metrics, events, checkpoints, artifacts)? This cannot be undone.",
    done: (c) => "Deleted comparison " + c.id + " and its " + c.children.length + " child jobs." };

  function showOne() {
    L.detailPage({ path: "/comparisons/" + encodeURIComponent(id), render, loaded: showReport, remove,
      active: (c) => !ended(c), download: (c) => [c.report_url + "?download=1", "comparison-" + c.id + ".html"] });
  }

  if (id) showOne(); else showList();
})();
