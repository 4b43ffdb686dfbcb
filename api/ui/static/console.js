/* simtrain console: what every console page shares, on window.simtrain (loaded by base.html before the
   page's own script; reads the #config JSON: api_base and the page's values).

     simtrain.config                 // the page's #config object ({api_base: "/v1", ...})
     simtrain.apiKey()               // the API key kept in this tab's sessionStorage ("" when signed out)
     simtrain.setApiKey(key) / simtrain.signOut()
     simtrain.requireSignIn()        // false (and off to /ui/signin?next=...) when no key is kept
     await simtrain.api("/jobs?limit=20")               // JSON; path under api_base ("/v1/..." works too)
     await simtrain.api("/jobs", {method: "POST", body: {...}})  // a plain object body is sent as JSON
     await simtrain.download("/jobs/ID/artifacts/model.safetensors", "model.safetensors")
     const stop = simtrain.stream("/jobs/ID/events/stream?after=0", {onEvent(ev) {...}, onEnd() {...}})

   api() sends `Authorization: Bearer <key>`; a 401 forgets the key and goes to the sign-in page (unless
   opts.redirect401 === false); any other error status throws simtrain.ApiError with the API's message
   (`.status`, `.code`, `.body`). stream() reads Server-Sent Events over fetch (EventSource cannot send
   the key). Also: el() builds elements (text only through textContent), fmtTime(), statusBadge().

     simtrain.leaveNotice("Deleted job ID.")           // for the next page (sessionStorage simtrain.notice)
     simtrain.showNotice(beforeEl, "jobs-notice")       // a list page: the notice left, once, as a
                                                        // <p id=... role=status> before beforeEl (or null) */
"use strict";
(function () {
  const config = JSON.parse(document.getElementById("config").textContent);
  const KEY_NAME = "simtrain.apiKey";
  const SIGNIN = "/ui/signin";

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.body = body;
      this.code = body && body.error ? body.error.code : null;
    }
  }

  function apiKey() { return sessionStorage.getItem(KEY_NAME) || ""; }
  function setApiKey(key) { sessionStorage.setItem(KEY_NAME, key); }
  function signOut() { sessionStorage.removeItem(KEY_NAME); }

  function goSignIn() {
    const next = location.pathname + location.search;
    location.assign(SIGNIN + (next.startsWith("/ui/") && !next.startsWith(SIGNIN) ? "?next=" + encodeURIComponent(next) : ""));
  }
  function requireSignIn() {
    if (apiKey()) return true;
    goSignIn();
    return false;
  }

  function url(path) {
    const base = config.api_base.replace(/\/$/, "");
    return path.startsWith(base + "/") || path === base ? path : base + (path.startsWith("/") ? path : "/" + path);
  }

  async function errorOf(r) {
    let body = null;
    try { body = await r.json(); } catch (_) { /* not JSON */ }
    const message = (body && body.error && body.error.message) || "HTTP " + r.status + " " + r.statusText;
    return new ApiError(message, r.status, body);
  }

  // the raw Response of an authenticated request (ok statuses only)
  async function request(path, opts) {
    opts = Object.assign({}, opts || {});
    const key = opts.key !== undefined ? opts.key : apiKey();
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (key) headers.Authorization = "Bearer " + key;
    let body = opts.body;
    if (body !== undefined && body !== null && !(body instanceof FormData) && !(body instanceof Blob) && typeof body !== "string") {
      body = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const r = await fetch(url(path), { method: opts.method || "GET", headers, body, signal: opts.signal });
    if (r.ok) return r;
    const err = await errorOf(r);
    if (r.status === 401 && opts.redirect401 !== false) { signOut(); goSignIn(); }
    throw err;
  }

  async function api(path, opts) {
    const r = await request(path, opts);
    if (r.status === 204) return null;
    const type = r.headers.get("content-type") || "";
    return type.includes("json") ? r.json() : r.text();
  }

  async function download(path, filename) {
    const blob = await (await request(path, { headers: { Accept: "*/*" } })).blob();
    const href = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = href;
    a.download = filename;
    a.hidden = true;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(href), 60000);
    return blob;
  }

  // one parsed SSE block: {id, event, data (JSON-parsed when it is JSON)}
  function parseEvent(block) {
    const ev = { id: null, event: "message", data: "" };
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const i = line.indexOf(":");
      const field = i < 0 ? line : line.slice(0, i);
      const value = i < 0 ? "" : line.slice(i + 1).replace(/^ /, "");
      if (field === "data") data.push(value);
      else if (field === "id") ev.id = value;
      else if (field === "event") ev.event = value;
    }
    if (!data.length) return null;
    ev.data = data.join("\n");
    try { ev.data = JSON.parse(ev.data); } catch (_) { /* text */ }
    return ev;
  }

  // Server-Sent Events over fetch; returns a function that stops the stream
  function stream(path, handlers) {
    const ctrl = new AbortController();
    (async () => {
      let error = null;
      try {
        const r = await request(path, { signal: ctrl.signal, headers: { Accept: "text/event-stream" } });
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const ev = parseEvent(buffer.slice(0, cut));
            buffer = buffer.slice(cut + 2);
            if (ev && handlers.onEvent) handlers.onEvent(ev);
          }
        }
      } catch (e) {
        if (ctrl.signal.aborted) return;
        error = e;
      }
      if (handlers.onEnd) handlers.onEnd(error);
    })();
    return () => ctrl.abort();
  }

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children || []) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  function fmtTime(iso) { return iso ? String(iso).replace("T", " ").slice(0, 19) : "\u2013"; }
  function statusBadge(status, extra) {
    return el("span", { class: "badge status-" + status, text: status + (extra || "") });
  }

  // a one-line notice one page leaves for the next (a deletion), shown once
  const NOTICE = "simtrain.notice";
  function leaveNotice(text) { sessionStorage.setItem(NOTICE, text); }
  function showNotice(before, id) {
    const text = sessionStorage.getItem(NOTICE);
    if (!text) return null;
    sessionStorage.removeItem(NOTICE);
    const p = el("p", { id, role: "status", text });
    before.before(p);
    return p;
  }

  // the nav: mark the current section, and "Sign out" forgets the key before it leaves
  function markNav() {
    for (const a of document.querySelectorAll(".topbar nav a")) {
      const href = a.getAttribute("href");
      if (a.id !== "sign-out" && (location.pathname === href || location.pathname.startsWith(href + "/"))) {
        a.setAttribute("aria-current", "page");
      }
    }
    const out = document.getElementById("sign-out");
    if (out) out.addEventListener("click", signOut);
  }
  markNav();

  window.simtrain = Object.freeze({
    config, ApiError, apiKey, setApiKey, signOut, requireSignIn, api, request, download, stream, el,
    fmtTime, statusBadge, leaveNotice, showNotice, TERMINAL: new Set(["succeeded", "failed", "cancelled"]),
  });
})();
