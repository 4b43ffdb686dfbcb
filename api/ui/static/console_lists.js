/* simtrain console: what the comparisons and tuning pages share, on window.simtrainLists (needs console.js).

     simtrainLists.listPage({path: "/comparisons", table, empty, more, message, row(item) -> <tr>,
                             active(item) -> bool})       // newest first, "More", live while any is active
     await simtrainLists.frameReport(frame, "/comparisons/ID/report")   // the offline report in a frame
     simtrainLists.detailPage({path: "/comparisons/ID", render(item), loaded(item), active(item) -> bool,
                               download(item) -> [path, filename],    // one item, polled while active
                               remove: {ended(item) -> bool, ask(item) -> text, done(item) -> text,
                                        list: "/ui/comparisons"}})    // #delete, shown once ended
     simtrainLists.poll(load, isActive)                    // load() now, again every 2 s while isActive()
     simtrainLists.summary(dl, [[term, value], ...])       // a <dl> of text values
     simtrainLists.link(href, text)

   A report needs the API key, which a frame's own request cannot send: it is fetched, and the frame
   loads it from a Blob (sandboxed: scripts run, at an opaque origin). A list page shows, once, the notice
   a deleted item's page left (#list-notice, console.js showNotice). Delete is shown while remove.ended
   (item): after a window.confirm(remove.ask(item)) it sends DELETE path, leaves remove.done(item) as the
   notice and goes to remove.list; an error (409: still running, or a job warm-starts from one of its
   jobs) shows in #item-message. Sets body[data-ready=1] after the first load. */
"use strict";
(function () {
  const S = window.simtrain;

  function link(href, text) { return S.el("a", { href, text }); }

  function summary(dl, pairs) {
    dl.replaceChildren(...pairs.flatMap(([term, value]) => [
      S.el("dt", { text: term }), S.el("dd", {}, [value instanceof Node ? value : String(value ?? "\u2013")])]));
  }

  function poll(load, isActive) {
    let timer = null;
    async function tick() {
      clearTimeout(timer);
      try { await load(); } finally { document.body.dataset.ready = "1"; }
      if (isActive()) timer = setTimeout(tick, 2000);
    }
    document.addEventListener("visibilitychange", () => { if (!document.hidden && isActive()) tick(); });
    return tick();
  }

  // a list page: the first page polled while any item is active; "More" appends the next pages
  function listPage(o) {
    const body = o.table.tBodies[0];
    S.showNotice(o.message, "list-notice"); // left by a deleted item's page
    let items = [], cursor = null, extra = [];
    function render() {
      body.replaceChildren(...items.concat(extra).map(o.row));
      o.empty.hidden = items.length + extra.length > 0;
      o.more.hidden = !cursor;
    }
    async function load() {
      try {
        const page = await S.api(o.path + "?limit=20");
        items = page.items;
        if (!extra.length) cursor = page.next_cursor;
        o.message.textContent = (items.some(o.active) ? "live \u00b7 " : "") + "updated " + new Date().toLocaleTimeString();
      } catch (e) { o.message.textContent = e.message; }
      render();
    }
    o.more.addEventListener("click", async () => {
      const page = await S.api(o.path + "?limit=20&cursor=" + encodeURIComponent(cursor));
      extra = extra.concat(page.items); cursor = page.next_cursor; render();
    });
    return poll(load, () => items.some(o.active));
  }

  // #delete (shown while o.remove.ended(item)): confirm, DELETE o.path, then the list with a notice
  function deleteButton(o, say) {
    const b = document.getElementById("delete");
    let item = null;
    b.addEventListener("click", async () => {
      if (!item || !window.confirm(o.remove.ask(item))) return;
      b.disabled = true;
      try {
        await S.api(o.path, { method: "DELETE" });
        S.leaveNotice(o.remove.done(item));
        location.assign(o.remove.list);
      } catch (e) {
        say(e, "Could not delete it: ");
        b.disabled = false;
        b.focus();
      }
    });
    return (shown) => { item = shown; b.hidden = !o.remove.ended(shown); };
  }

  // one item's page: GET o.path now and every 2 s while o.active(item), then o.render(item) and
  // await o.loaded(item); a 404 shows #not-found, other errors #item-message. #cancel POSTs
  // o.path + "/cancel" and renders the answer; #download-report saves S.download(...o.download(item)).
  function detailPage(o) {
    const $ = (id) => document.getElementById(id);
    const say = (e, prefix) => { $("item-message").textContent = (prefix || "") + e.message; $("item-message").className = "error"; };
    const showDelete = deleteButton(o, say);
    const show = (item) => { o.render(item); showDelete(item); };
    let current = null;
    async function load() {
      try {
        current = await S.api(o.path);
      } catch (e) {
        if (e.status === 404) { $("not-found").hidden = false; $("not-found-message").textContent = e.message; current = null; return; }
        say(e);
        return;
      }
      show(current);
      await o.loaded(current);
    }
    $("cancel").addEventListener("click", async () => {
      try { show(await S.api(o.path + "/cancel", { method: "POST" })); } catch (e) { say(e); }
    });
    $("download-report").addEventListener("click", () => S.download(...o.download(current)).catch(say));
    return poll(load, () => current !== null && o.active(current));
  }

  async function frameReport(frame, path) {
    const html = await S.api(path, { headers: { Accept: "text/html" } });
    if (frame.dataset.url) URL.revokeObjectURL(frame.dataset.url);
    const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    frame.dataset.url = url;
    frame.src = url;
    frame.hidden = false;
  }

  window.simtrainLists = Object.freeze({ link, summary, poll, listPage, detailPage, frameReport });
})();
