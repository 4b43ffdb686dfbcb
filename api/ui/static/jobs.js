/* simtrain jobs page (/ui/jobs): the signed-in tenant's jobs, newest first. The status filter is the API's
   `status` query, the search matches the loaded jobs' ids and names (metadata.name, else the comparison
   variant); both live in the URL (?status=&q=). "More jobs" loads the next keyset page (next_cursor) of
   ?limit= jobs (25 by default, at most 100).
   Live: the first page is read again every 2 s while a listed job is not finished (10 s otherwise), and
   unfinished jobs beyond it one by one. A notice another page left (sessionStorage simtrain.notice: the job
   page's "Deleted job ...") is shown once above the table. Sets body[data-ready=1] after the first load.
   Needs console.js. */
"use strict";
(function () {
  if (!simtrain.requireSignIn()) return;
  const { api, el, fmtTime, statusBadge, TERMINAL } = simtrain;
  const LIVE_MS = 2000, IDLE_MS = 10000;
  const statusSel = document.getElementById("status-filter");
  const search = document.getElementById("search");
  const body = document.getElementById("jobs-body");
  const more = document.getElementById("more");
  const line = document.getElementById("jobs-status");
  const empty = document.getElementById("jobs-empty");
  const byId = new Map();
  let order = [], nextCursor = null, timer = null, generation = 0;

  const params = new URLSearchParams(location.search);
  const PAGE = Math.min(100, Math.max(1, parseInt(params.get("limit"), 10) || 25));
  statusSel.value = params.get("status") || "";
  search.value = params.get("q") || "";

  function say(text, bad) { line.textContent = text; line.className = bad ? "error" : "muted"; }
  simtrain.showNotice(line, "jobs-notice"); // left by the page before (a job deleted)
  function jobName(j) {
    const m = (j.spec && j.spec.metadata) || {};
    return m.name || m.variant || "";
  }
  function accuracy(j) {
    if (j.final_metrics && typeof j.final_metrics.accuracy === "number") return j.final_metrics.accuracy;
    const v = j.latest_metrics && j.latest_metrics.val;
    return v && typeof v.accuracy === "number" ? v.accuracy : null;
  }
  function shown(j) {
    if (statusSel.value && j.status !== statusSel.value) return false;
    const q = search.value.trim().toLowerCase();
    return !q || j.id.toLowerCase().includes(q) || jobName(j).toLowerCase().includes(q);
  }

  function row(j) {
    const p = j.progress || { epoch: 0, epochs: 0, fraction: 0 };
    const bar = el("progress", { max: "1", value: String(p.fraction || 0), "aria-label": "progress of job " + j.id });
    const acc = accuracy(j);
    return el("tr", { "data-job": j.id, "data-status": j.status }, [
      el("td", {}, [el("a", { class: "mono", href: "/ui/jobs/" + encodeURIComponent(j.id), title: j.id,
        "aria-label": "job " + j.id, text: j.id.slice(0, 8) })]),
      el("td", { class: "name", text: jobName(j) }),
      el("td", {}, [statusBadge(j.status, j.cancel_requested && !TERMINAL.has(j.status) ? " (cancelling)" : "")]),
      el("td", { text: j.dataset }),
      el("td", { class: "mono", text: j.spec && j.spec.loss ? j.spec.loss.kind : "" }),
      el("td", { class: "progress" }, [bar, " " + p.epoch + "/" + p.epochs]),
      el("td", { text: acc === null ? "\u2013" : acc.toFixed(4) }),
      el("td", { class: "muted", text: fmtTime(j.created_at) }),
    ]);
  }

  function render() {
    const rows = order.map((id) => byId.get(id)).filter(shown).map(row);
    body.replaceChildren(...rows);
    empty.hidden = rows.length > 0;
    more.hidden = !nextCursor;
  }

  function listPath(cursor) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (statusSel.value) q.set("status", statusSel.value);
    if (cursor) q.set("cursor", cursor);
    return "/jobs?" + q.toString();
  }

  function merge(items, atEnd) {
    const fresh = [];
    for (const j of items) {
      if (!byId.has(j.id)) fresh.push(j.id);
      byId.set(j.id, j);
    }
    order = atEnd ? order.concat(fresh) : fresh.concat(order);
  }

  // the unfinished jobs that the first page no longer holds (they moved down as new jobs arrived)
  async function refreshStragglers(firstIds) {
    const rest = order.filter((id) => !firstIds.has(id) && !TERMINAL.has(byId.get(id).status)).slice(0, 20);
    const jobs = await Promise.all(rest.map((id) => api("/jobs/" + encodeURIComponent(id)).catch(() => null)));
    for (const j of jobs) if (j) byId.set(j.id, j);
  }

  async function refresh() {
    clearTimeout(timer);
    const gen = generation;
    let live = false;
    try {
      const page = await api(listPath(null));
      if (gen !== generation) return;
      const first = order.length === 0;
      merge(page.items, false);
      if (first) nextCursor = page.next_cursor;
      await refreshStragglers(new Set(page.items.map((j) => j.id)));
      if (gen !== generation) return;
      render();
      live = order.some((id) => !TERMINAL.has(byId.get(id).status));
      say((live ? "Live: updating every 2 s" : "Up to date") + " \u00b7 " + new Date().toLocaleTimeString());
    } catch (e) {
      if (gen !== generation) return;
      say("Could not load the jobs: " + e.message, true);
    }
    document.body.dataset.ready = "1";
    timer = setTimeout(refresh, live ? LIVE_MS : IDLE_MS);
  }

  async function loadMore() {
    if (!nextCursor) return;
    more.disabled = true;
    try {
      const page = await api(listPath(nextCursor));
      merge(page.items, true);
      nextCursor = page.next_cursor;
      render();
    } catch (e) {
      say("Could not load more jobs: " + e.message, true);
    } finally {
      more.disabled = false;
    }
  }

  function keepInUrl() {
    const q = new URLSearchParams();
    if (params.get("limit")) q.set("limit", String(PAGE));
    if (statusSel.value) q.set("status", statusSel.value);
    if (search.value.trim()) q.set("q", search.value.trim());
    history.replaceState(null, "", location.pathname + (q.toString() ? "?" + q : ""));
  }

  statusSel.addEventListener("change", () => {
    generation++;
    byId.clear(); order = []; nextCursor = null;
    keepInUrl(); render(); refresh();
  });
  search.addEventListener("input", () => { keepInUrl(); render(); });
  document.getElementById("filters").addEventListener("submit", (ev) => ev.preventDefault());
  more.addEventListener("click", loadMore);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
  refresh();
})();
