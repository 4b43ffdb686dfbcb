/* simtrain sign-in page (/ui/signin): checks the pasted API key with an authenticated read of the API
   (GET jobs, one item), keeps it (simtrain.setApiKey) and goes on to ?next= (a /ui/ path) or /ui/jobs.
   A key the API refuses is shown as a message and not kept. ?signout=1 forgets the kept key.
   Sets body[data-ready=1] when the form is ready. Needs console.js. */
"use strict";
(function () {
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("signin-form");
  const input = document.getElementById("api-key");
  const message = document.getElementById("signin-message");
  const button = document.getElementById("signin-submit");

  function say(text, bad) {
    message.textContent = text;
    message.className = bad ? "error" : "muted";
    input.setAttribute("aria-invalid", bad ? "true" : "false");
  }
  function nextPage() {
    const next = params.get("next") || "";
    return /^\/ui\/[A-Za-z0-9/_.?=&%-]*$/.test(next) && !next.startsWith("/ui/signin") ? next : "/ui/jobs";
  }

  if (params.get("signout") === "1") {
    simtrain.signOut();
    say("Signed out.");
    history.replaceState(null, "", location.pathname);
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const key = input.value.trim();
    if (!key) { say("Paste an API key first.", true); input.focus(); return; }
    button.disabled = true;
    say("Checking the key\u2026");
    try {
      await simtrain.api("/jobs?limit=1", { key, redirect401: false });
      simtrain.setApiKey(key);
      input.value = "";
      say("Signed in.");
      location.assign(nextPage());
    } catch (e) {
      say(e.status === 401 ? "The API did not accept this key." : "Could not check the key: " + e.message, true);
      input.focus();
      input.select();
    } finally {
      button.disabled = false;
    }
  });
  input.focus();
  document.body.dataset.ready = "1";
})();
