/* simtrain console, the new-job form (/ui/new). Needs console.js (window.simtrain) and heatmap.js.

   The spec fields are drawn from #config.catalog (api/ui/console_render.py: the kinds and fields of the
   similarity and loss specs, the model and training fields, from the specs' JSON schemas). On every change
   the request body is built again (body()) and shown in #json-preview: that text is what submit POSTs to
   /v1/jobs. The similarity (with the loss) is previewed by POST /v1/similarity/preview, debounced, and
   drawn on #heatmap; the preview's guidance (the loss's target rows, warnings) is shown beside it.
   A 422 lists the fields it refuses (`details[].field`): each message goes next to the control of that
   field (the longest matching prefix), the first one gets the focus. Datasets: the built-in ones and the
   tenant's uploads; an upload goes by XMLHttpRequest (upload progress) and is selected when stored.
   API values reach the page through textContent and DOM properties only.
   Sets body[data-ready=1] once the datasets are listed, body[data-preview=N] after the Nth preview. */
"use strict";
(function () {
  const S = window.simtrain;
  if (!S.requireSignIn()) return;
  const CATALOG = S.config.catalog;
  const $ = (id) => document.getElementById(id);
  const slots = new Map();      // data-field -> {control, error}: where a field's API error goes
  const datasets = new Map();   // ref -> {ref, label, classes, status}
  let previewTimer = null, previewSeq = 0, previewAsked = "";

  // ---------------------------------------------------------------------------- fields from the catalogue
  function fieldId(path) { return "f-" + path.replace(/[^A-Za-z0-9_-]/g, "-"); }

  function hintOf(f) {
    const parts = [];
    const lo = f.minimum !== undefined ? "\u2265 " + f.minimum : f.exclusiveMinimum !== undefined ? "> " + f.exclusiveMinimum : null;
    const hi = f.maximum !== undefined ? "\u2264 " + f.maximum : f.exclusiveMaximum !== undefined ? "< " + f.exclusiveMaximum : null;
    if (f.widget === "int_list") parts.push("integers, comma-separated");
    if (f.widget === "json") parts.push("JSON");
    if (lo || hi) parts.push([lo, hi].filter(Boolean).join(", "));
    if (f.required) parts.push("required");
    else if (f.nullable) parts.push("optional");
    if (f.description) parts.push(f.description);
    return parts.join(" \u00b7 ");
  }

  function controlFor(f, id) {
    if (f.widget === "select") {
      const sel = S.el("select", { id });
      if (f.nullable || f.default === null || f.default === undefined) sel.append(S.el("option", { value: "", text: "(not set)" }));
      for (const c of f.choices) sel.append(S.el("option", { value: String(c), text: String(c) }));
      sel.value = f.default === null || f.default === undefined ? "" : String(f.default);
      return sel;
    }
    if (f.widget === "boolean") {
      const box = S.el("input", { id, type: "checkbox" });
      box.checked = f.default === true;
      return box;
    }
    if (f.widget === "json") {
      const area = S.el("textarea", { id, rows: "3", spellcheck: "false" });
      if (f.default !== null && f.default !== undefined) area.value = JSON.stringify(f.default);
      return area;
    }
    const numeric = f.widget === "number" || f.widget === "integer";
    const input = S.el("input", { id, type: numeric ? "number" : "text", autocomplete: "off" });
    if (numeric) {
      input.step = f.widget === "integer" ? "1" : "any";
      if (f.minimum !== undefined) input.min = String(f.minimum);
      if (f.maximum !== undefined) input.max = String(f.maximum);
    }
    if (f.default !== null && f.default !== undefined) input.value = Array.isArray(f.default) ? f.default.join(", ") : String(f.default);
    return input;
  }

  // one labelled control with its hint and error line; registered as the slot of `path`
  function fieldRow(f, path) {
    const id = fieldId(path);
    const control = controlFor(f, id);
    control.dataset.field = path;
    const hint = S.el("p", { class: "hint", id: id + "-hint", text: hintOf(f) });
    const error = S.el("p", { class: "field-error", id: id + "-error", hidden: true });
    control.setAttribute("aria-describedby", id + "-hint " + id + "-error");
    const label = S.el("label", { for: id, text: f.label });
    const row = f.widget === "boolean"
      ? S.el("div", { class: "field check" }, [control, label, hint, error])
      : S.el("div", { class: "field" }, [label, control, hint, error]);
    row.spec = f;
    slots.set(path, { control, error });
    return row;
  }

  // the value a control stands for, or undefined when it is left out of the body
  function valueOf(f, control) {
    if (f.widget === "boolean") return control.checked;
    const raw = control.value.trim();
    if (raw === "") return undefined;
    if (f.widget === "select") return f.choices.find(c => String(c) === raw);
    if (f.widget === "number" || f.widget === "integer") { const x = Number(raw); return Number.isFinite(x) ? x : raw; }
    if (f.widget === "int_list") {
      const items = raw.split(/[\s,]+/).filter(Boolean).map(p => (/^-?\d+$/.test(p) ? Number(p) : p));
      return items;
    }
    if (f.widget === "json") { try { return JSON.parse(raw); } catch (_) { return raw; } }
    return raw;
  }

  function collect(box) {
    const out = {};
    for (const row of box.children) {
      if (!row.spec || row.hidden) continue;
      const v = valueOf(row.spec, slots.get(row.querySelector("[data-field]").dataset.field).control);
      if (v !== undefined) out[row.spec.name] = v;
    }
    return out;
  }

  function drawFields(box, fields, prefix) {
    for (const path of [...slots.keys()]) if (path.startsWith(prefix + ".") && !path.endsWith(".kind")) slots.delete(path);
    box.replaceChildren(...fields.map(f => fieldRow(f, prefix + "." + f.name)));
  }

  // --------------------------------------------------------------------------------- kinds (similarity, loss)
  function kindSelect(part, allowNone) {
    const sel = $(part + "-kind");
    if (allowNone) sel.append(S.el("option", { value: "", text: "none (plain classification)" }));
    for (const k of CATALOG[part]) sel.append(S.el("option", { value: k.kind, text: k.kind }));
    slots.set(part + ".kind", { control: sel, error: $(part + "-error") });
    sel.addEventListener("change", () => { showKind(part); changed(); });
  }

  function showKind(part) {
    const kind = $(part + "-kind").value;
    const spec = CATALOG[part].find(k => k.kind === kind);
    $(part + "-about").textContent = spec ? spec.description : "No similarity: the loss sees every mistake as equally bad.";
    drawFields($(part + "-fields"), spec ? spec.fields : [], part);
    if (part === "similarity" && kind === "matrix") prefillMatrix();
  }

  function prefillMatrix() {
    const names = classes();
    const slot = slots.get("similarity.values");
    if (slot && names.length) slot.control.value = JSON.stringify(names.map((_, i) => names.map((_, j) => (i === j ? 1 : 0))));
  }

  function kindBody(part) {
    const kind = $(part + "-kind").value;
    if (!kind) return undefined;
    return Object.assign({ kind }, collect($(part + "-fields")));
  }

  // ------------------------------------------------------------------------------------------ model, training
  function drawModel() {
    const box = $("model-fields");
    drawFields(box, CATALOG.model, "model");
    slots.get("model.kind").control.addEventListener("change", showModelFields);
    showModelFields();
  }

  function showModelFields() {
    const kind = slots.get("model.kind").control.value;
    const shown = new Set(["kind", "head", ...(CATALOG.model_fields_by_kind[kind] || [])]);
    for (const row of $("model-fields").children) row.hidden = !shown.has(row.spec.name);
  }

  // ---------------------------------------------------------------------------------------- dataset, classes
  function datasetLabel(d) {
    const shape = d.feature_shape ? " \u00b7 features " + JSON.stringify(d.feature_shape) : "";
    return d.num_samples + " samples \u00b7 " + d.classes.length + " classes" + shape;
  }

  function addDataset(group, d) {
    const ref = d.ref || d.id;
    const name = d.ref ? d.ref : (d.name || "dataset") + " (" + ref.slice(0, 8) + ")";
    const status = d.status && d.status !== "ready" ? " \u2014 " + d.status : "";
    const option = S.el("option", { value: ref, text: name + status });
    option.disabled = d.status === "failed";
    group.append(option);
    datasets.set(ref, { ref, info: datasetLabel(d) + (d.description ? " \u00b7 " + d.description : ""), classes: d.classes || [], status: d.status || "ready" });
    return option;
  }

  async function loadDatasets(select) {
    const sel = $("dataset");
    const [builtin, uploads] = await Promise.all([S.api("/datasets/builtin"), S.api("/datasets?limit=100")]);
    const groups = [S.el("optgroup", { label: "Built-in" }), S.el("optgroup", { label: "Uploaded" })];
    sel.replaceChildren(...groups);
    datasets.clear();
    for (const d of builtin.items) addDataset(groups[0], d);
    for (const d of uploads.items) addDataset(groups[1], d);
    if (!uploads.items.length) groups[1].remove();
    if (select && datasets.has(select)) sel.value = select;
    datasetChanged();
  }

  function datasetChanged() {
    const d = datasets.get($("dataset").value);
    $("dataset-info").textContent = d ? d.info + (d.status !== "ready" ? " \u00b7 " + d.status : "") : "";
    const known = d && d.classes.length > 0;
    $("class-picker").hidden = !known;
    $("classes-text-field").hidden = known;
    slots.set("classes", { control: known ? $("class-picker") : $("classes-text"), error: $("classes-error") });
    $("class-picker").replaceChildren(...(known ? d.classes.map(classBox) : []));
    changed();
  }

  function classBox(name, i) {
    const id = "class-" + i;
    const box = S.el("input", { id, type: "checkbox", value: name });
    box.checked = true;
    box.addEventListener("change", changed);
    return S.el("span", { class: "class-choice" }, [box, S.el("label", { for: id, text: name })]);
  }

  // the classes the job will train on (all the dataset's when the picker is full)
  function classes() {
    if (!$("class-picker").hidden) return [...$("class-picker").querySelectorAll("input:checked")].map(b => b.value);
    return $("classes-text").value.split("\n").map(s => s.trim()).filter(Boolean);
  }

  function classesBody() {
    if ($("class-picker").hidden) { const c = classes(); return c.length ? c : undefined; }
    const all = $("class-picker").querySelectorAll("input");
    const chosen = classes();
    return chosen.length === all.length ? undefined : chosen;
  }

  // ------------------------------------------------------------------------------------------- the body
  function body() {
    const out = { dataset: $("dataset").value };
    const parts = { classes: classesBody(), similarity: kindBody("similarity"), loss: kindBody("loss"),
      model: collect($("model-fields")), training: collect($("training-fields")) };
    for (const [k, v] of Object.entries(parts)) if (v !== undefined) out[k] = v;
    return out;
  }

  function changed() {
    $("json-preview").textContent = JSON.stringify(body(), null, 2);
    schedulePreview();
  }

  // ------------------------------------------------------------------------------------------- preview
  function schedulePreview() {
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 300);
  }

  async function preview() {
    const b = body();
    const names = classes();
    $("preview-box").hidden = !b.similarity;
    if (!b.similarity || names.length < 1) return;
    const req = { classes: names, similarity: b.similarity };
    if (b.loss) req.loss = b.loss;
    if (JSON.stringify(req) === previewAsked) return;  // a change elsewhere in the form
    previewAsked = JSON.stringify(req);
    const seq = ++previewSeq;
    $("preview-status").textContent = "computing\u2026";
    try {
      const answer = await S.api("/similarity/preview", { method: "POST", body: req });
      if (seq === previewSeq) showPreview(answer);
    } catch (e) {
      if (seq !== previewSeq) return;
      $("preview-status").textContent = "No preview: " + e.message;
      $("preview-warnings").hidden = true;
    } finally {
      if (seq === previewSeq) document.body.dataset.preview = String(seq);
    }
  }

  function showPreview(answer) {
    simtrainHeatmap.draw($("heatmap"), answer.matrix, answer.classes, { label: "similarity" });
    const g = answer.guidance || null;
    const warnings = [...(answer.warnings || []), ...((g && g.warnings) || [])];
    const list = $("preview-warnings");
    list.replaceChildren(...warnings.map(w => S.el("li", { text: typeof w === "string" ? w : (w.code ? w.code + ": " : "") + w.message })));
    list.hidden = warnings.length === 0;
    const targets = g && g.targets;
    $("targets-figure").hidden = !targets;
    if (targets) {
      const max = Math.max(...targets.flat());
      simtrainHeatmap.draw($("targets-heatmap"), targets, answer.classes, { label: "loss targets", max });
      $("targets-caption").textContent = (g.targets_kind === "weights" ? "How the loss weighs the classes" :
        "What the loss trains each true class (row) towards") + " (" + g.loss + "; dark = " + max.toFixed(2) + ")";
    }
    $("preview-status").textContent = answer.classes.length + " classes" +
      (g && g.equivalent_to_cross_entropy ? " \u00b7 this loss equals plain cross-entropy here" : "");
  }

  // ------------------------------------------------------------------------------------------- errors
  function clearErrors() {
    for (const { control, error } of slots.values()) { error.hidden = true; error.textContent = ""; control.removeAttribute("aria-invalid"); }
    $("form-error").textContent = "";
  }

  function slotOf(field) {
    const parts = String(field || "").split(".");
    for (let n = parts.length; n > 0; n--) {
      const slot = slots.get(parts.slice(0, n).join("."));
      if (slot && !slot.control.closest("[hidden]")) return slot;
    }
    return null;
  }

  function showErrors(e) {
    const details = (e.body && e.body.error && Array.isArray(e.body.error.details)) ? e.body.error.details : [];
    let first = null;
    for (const d of details) {
      const slot = slotOf(d.field);
      if (!slot) continue;
      slot.error.textContent = (slot.error.textContent ? slot.error.textContent + " " : "") + d.field + ": " + d.msg;
      slot.error.hidden = false;
      slot.control.setAttribute("aria-invalid", "true");
      first = first || slot.control;
    }
    $("form-error").textContent = "The API did not accept the job: " + e.message;
    if (first) first.focus();
  }

  async function submit(ev) {
    ev.preventDefault();
    clearErrors();
    const text = $("json-preview").textContent;
    $("submit").disabled = true;
    try {
      const job = await S.api("/jobs", { method: "POST", body: text, headers: { "Content-Type": "application/json" } });
      location.assign("/ui/jobs/" + encodeURIComponent(job.id));
    } catch (e) {
      showErrors(e);
      $("submit").disabled = false;
    }
  }

  // ------------------------------------------------------------------------------------------- upload
  function upload() {
    const file = $("upload-file").files[0];
    const status = $("upload-status"), bar = $("upload-progress");
    if (!file) { status.textContent = "Choose a file first."; $("upload-file").focus(); return; }
    const form = new FormData();
    form.append("file", file);
    if ($("upload-name").value.trim()) form.append("name", $("upload-name").value.trim());
    const xhr = new XMLHttpRequest();
    xhr.open("POST", S.config.api_base + "/datasets");
    xhr.setRequestHeader("Authorization", "Bearer " + S.apiKey());
    xhr.setRequestHeader("Accept", "application/json");
    bar.hidden = false; bar.value = 0; bar.dataset.events = "0";
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) bar.value = Math.round((100 * e.loaded) / e.total);
      bar.dataset.events = String(Number(bar.dataset.events) + 1);
      status.textContent = "uploading " + file.name + ": " + bar.value + "%";
    });
    xhr.upload.addEventListener("load", () => { bar.value = 100; status.textContent = "uploaded; the API is reading the file\u2026"; });
    xhr.addEventListener("load", () => uploaded(xhr));
    xhr.addEventListener("error", () => { status.textContent = "The upload failed (network error)."; $("upload-button").disabled = false; });
    $("upload-button").disabled = true;
    xhr.send(form);
  }

  async function uploaded(xhr) {
    const status = $("upload-status");
    $("upload-button").disabled = false;
    let answer = null;
    try { answer = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status === 401) { S.signOut(); S.requireSignIn(); return; }
    if (xhr.status !== 200 && xhr.status !== 201) {
      status.textContent = "Not stored: " + ((answer && answer.error && answer.error.message) || "HTTP " + xhr.status);
      return;
    }
    status.textContent = "Dataset " + answer.id + " is " + answer.status + ": " + datasetLabel(answer) +
      (xhr.status === 200 ? " (the same file was uploaded before)" : "");
    await loadDatasets(answer.id);
    if (answer.status === "importing") watchDataset(answer.id);
  }

  function watchDataset(id) {
    setTimeout(async () => {
      const d = await S.api("/datasets/" + encodeURIComponent(id));
      $("upload-status").textContent = "Dataset " + d.id + " is " + d.status;
      if (d.status === "importing") watchDataset(id); else loadDatasets($("dataset").value);
    }, 2000);
  }

  // ------------------------------------------------------------------------------------------- start
  async function start() {
    kindSelect("similarity", true);
    kindSelect("loss", false);
    $("similarity-kind").value = "ordinal";
    $("loss-kind").value = "simloss";
    showKind("similarity"); showKind("loss");
    drawModel();
    drawFields($("training-fields"), CATALOG.training, "training");
    slots.set("dataset", { control: $("dataset"), error: $("dataset-error") });
    for (const part of ["model", "training"]) slots.set(part, { control: $(part + "-fields"), error: $(part + "-error") });
    for (const part of ["similarity", "loss"]) slots.set(part, { control: $(part + "-kind"), error: $(part + "-error") });
    $("job-form").addEventListener("input", changed);
    $("job-form").addEventListener("change", changed);
    $("job-form").addEventListener("submit", submit);
    $("dataset").addEventListener("change", datasetChanged);
    $("upload-button").addEventListener("click", upload);
    $("upload-name").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); upload(); } });
    try { await loadDatasets("builtin:digits"); } catch (e) { $("form-error").textContent = e.message; }
    document.body.dataset.ready = "1";
  }
  start();
})();
