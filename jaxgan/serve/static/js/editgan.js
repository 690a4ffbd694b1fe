// The EditGAN panel: the current image's segmentation (from the model's segmentation branch) as an overlay with
// a legend; a class brush paints the target segmentation; the edit region is the painted pixels dilated as the
// official edit loss does (a 7 x 7 square), drawn on the image; an edit session optimises the latent; its edit
// vector is saved (a download and the tab's list) and applied to the current image with a scale.

import { api, blobToDataUrl, fetchBlob, followProgress, withFileUrl } from "./api.js";
import { $, app, clearError, guarded, imageRequest, on, save, showError, startFields } from "./state.js";
import { brushRadius, dilateSquare, loadImage, mapToPng, paintStroke, pixelAt, pngToMap } from "./pixels.js";

const E = {
  loadedFor: null,     // the (model, source) whose segmentation is shown
  image: null, labels: null, target: null, painted: null, region: null, layer: null,
  editSid: null, editState: null, applySid: null, applySerial: 0,
  painting: null,
};

const size = () => app.model.resolution;
const available = () => app.model.capabilities.includes("editgan");
const vectorsKey = () => `jaxgan.vectors.${app.model.name}`;

export function init() {
  on("model", modelChanged);
  on("image", () => { E.loadedFor = null; E.editSid = null; E.applySid = null; persist(); clearResults();
                      if (!$("panel-editgan").hidden) guarded(loadSegmentation); });
  const c = $("seg-canvas");
  c.addEventListener("pointerdown", (e) => guarded(() => pointerDown(e)));
  c.addEventListener("pointermove", pointerMove);
  window.addEventListener("pointerup", () => { E.painting = null; });
  $("seg-opacity").addEventListener("input", draw);
  $("reset-edit").addEventListener("click", resetPainting);
  $("run-edit").addEventListener("click", () => guarded(runEdit));
  $("save-vector").addEventListener("click", () => guarded(saveVector));
  $("load-vector").addEventListener("change", () => guarded(loadVector));
  $("apply").addEventListener("click", () => guarded(applyVector));
  $("vector-scale").addEventListener("input", () => { $("vector-scale-value").textContent = $("vector-scale").value; });
  $("vector-scale").addEventListener("change", () => { if ($("vector").value !== "") guarded(applyVector); });
}

function modelChanged() {
  const hint = $("editgan-hint");
  hint.hidden = available();
  hint.textContent = available() ? "" : app.model.hints.editgan;
  for (const id of ["run-edit", "apply", "class"]) $(id).disabled = !available();
  const select = $("class");
  select.replaceChildren();
  const seg = app.model.segmentation;
  if (seg) {
    for (let k = 0; k < seg.num_classes; k++) select.append(new Option(`class ${k}`, String(k)));
    select.value = seg.num_classes > 1 ? "1" : "0";
    $("edit-steps").value = Math.min(seg.edit_defaults.steps, app.limits.max_steps ?? Infinity);
    $("seg-brush").value = brushRadius(app.model.resolution);
  }
  legend();
  listVectors();
  E.loadedFor = null;
}

export function shown() {
  if (available() && E.loadedFor !== key()) guarded(loadSegmentation);
}

function key() {
  return JSON.stringify([app.model.name, app.source]);
}

function persist() {
  save({ editgan: { editSid: E.editSid, applySid: E.applySid } });
}

function clearResults() {
  for (const id of ["edit-before", "edit-after", "apply-result"]) $(id).removeAttribute("src");
  $("save-vector").disabled = true;
  $("edit-status").textContent = "";
  $("edit-progress").value = 0;
  $("apply-progress").value = 0;
}

// -- the segmentation and its painting ----------------------------------------------------------------------------

async function loadSegmentation() {
  const wanted = key();
  const out = await api("/api/segment", { method: "POST", body: imageRequest() });
  if (wanted !== key()) return;  // the image changed meanwhile
  E.image = await loadImage(out.images[0]);
  E.labels = await pngToMap(out.labels[0], size());
  E.loadedFor = wanted;
  resetPainting();
}

function resetPainting() {
  if (!E.labels) return;
  E.target = E.labels.slice();
  E.painted = new Uint8Array(E.labels.length);
  regionChanged();
}

function regionChanged() {
  const n = size();
  E.region = dilateSquare(E.painted, n, app.model.segmentation.edit_defaults.dilation);
  const palette = app.model.segmentation.palette;
  const layer = document.createElement("canvas");
  layer.width = layer.height = n;
  const context = layer.getContext("2d");
  const data = context.createImageData(n, n);
  const counts = new Array(palette.length).fill(0);
  let painted = 0, region = 0;
  for (let k = 0; k < E.target.length; k++) {
    const [r, g, b] = palette[E.target[k]];
    counts[E.target[k]]++;
    painted += E.painted[k];
    region += E.region[k];
    data.data.set([r, g, b, 255], 4 * k);
  }
  context.putImageData(data, 0, 0);
  E.layer = layer;
  E.outline = outline(E.region, n);
  $("seg-painted").textContent = String(painted);
  $("seg-region").textContent = String(region);
  const c = $("seg-canvas");
  c.dataset.painted = String(painted);
  c.dataset.region = String(region);
  legendCounts(counts);
  draw();
}

// The region's border pixels (in the region, with a 4-neighbour outside it), drawn over the overlay.
function outline(region, n) {
  const layer = document.createElement("canvas");
  layer.width = layer.height = n;
  const context = layer.getContext("2d");
  const data = context.createImageData(n, n);
  const inside = (i, j) => i >= 0 && j >= 0 && i < n && j < n && region[i * n + j];
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (inside(i, j) && !(inside(i - 1, j) && inside(i + 1, j) && inside(i, j - 1) && inside(i, j + 1))) {
        data.data.set([255, 230, 0, 255], 4 * (i * n + j));
      }
    }
  }
  context.putImageData(data, 0, 0);
  return layer;
}

// The legend's swatches, built once per model; `regionChanged` keeps their pixel counts up to date.
function legend() {
  const box = $("legend");
  box.replaceChildren();
  (app.model.segmentation?.palette || []).forEach(([r, g, b], k) => {
    const item = document.createElement("button");
    item.className = "swatch";
    item.dataset.class = String(k);
    item.innerHTML = `<i style="background: rgb(${r}, ${g}, ${b})"></i>${k}`;
    item.addEventListener("click", () => { $("class").value = String(k); });
    box.append(item);
  });
}

function legendCounts(counts) {
  for (const item of $("legend").children) {
    const k = Number(item.dataset.class);
    item.title = `class ${k}: ${counts[k]} px; click to paint with it`;
  }
}

function draw() {
  const c = $("seg-canvas");
  const context = c.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.clearRect(0, 0, c.width, c.height);
  if (!E.image) return;
  context.drawImage(E.image, 0, 0, c.width, c.height);
  context.globalAlpha = Number($("seg-opacity").value);
  context.drawImage(E.layer, 0, 0, c.width, c.height);
  context.globalAlpha = 1;
  context.drawImage(E.outline, 0, 0, c.width, c.height);
}

function paint(from, to) {
  const n = size();
  const stroke = new Uint8Array(n * n);
  paintStroke(stroke, n, from, to, Number($("seg-brush").value) || 1, 1);
  const cls = Number($("class").value);
  for (let k = 0; k < stroke.length; k++) {
    if (stroke[k]) { E.target[k] = cls; E.painted[k] = 1; }
  }
  regionChanged();
}

function pointerDown(e) {
  if (!E.labels || !available()) return;
  const at = pixelAt($("seg-canvas"), e, size());
  E.painting = { last: at };
  $("seg-canvas").setPointerCapture(e.pointerId);
  paint(at, at);
}

function pointerMove(e) {
  if (!E.painting) return;
  const at = pixelAt($("seg-canvas"), e, size());
  paint(E.painting.last, at);
  E.painting.last = at;
}

// The painted pixels (the edit region before dilation) and the target labels, for tests and for saving.
export function painting() {
  return { painted: Array.from(E.painted || []), region: Array.from(E.region || []),
           target: Array.from(E.target || []), labels: Array.from(E.labels || []) };
}
window.jaxganEditgan = { painting };

// -- edits --------------------------------------------------------------------------------------------------------

async function runEdit() {
  if (!E.painted || !E.painted.some((v) => v)) throw new Error("paint the segmentation first: choose a class and brush over the image");
  clearError();
  const n = size();
  const body = { model: app.model.name, ...startFields(), steps: Number($("edit-steps").value),
                 target: await mapToPng(E.target, n), region: await mapToPng(E.painted, n, (v) => (v ? 255 : 0)) };
  clearResults();
  const status = await api("/api/editgan/edit", { method: "POST", body });
  E.editSid = status.id;
  persist();
  follow(status, $("edit-progress"), (end) => showEdit(end));
}

function follow(status, bar, done) {
  followProgress("editgan", status.id, bar, (end) => guarded(() => done(end)));
}

// Show an API image file in an <img>, once decoded.
function showFile(image, path) {
  return withFileUrl(path, async (url) => { image.src = url; await image.decode(); });
}

async function showEdit(status) {
  E.editState = status.state;
  $("edit-status").textContent = status.state === "done"
    ? `done: ${status.step} steps, classes ${status.class_ids.join(", ")}` : `${status.state}: ${status.error || status.stop_reason}`;
  if (status.state !== "done") throw new Error(`the edit ${status.state}: ${status.error || status.stop_reason}`);
  await Promise.all([showFile($("edit-before"), `/api/editgan/${status.id}/before.png`),
                     showFile($("edit-after"), `/api/editgan/${status.id}/image.png`)]);
  $("edit-after").dataset.session = status.id;
  $("save-vector").disabled = false;
}

// -- edit vectors: saved in this browser per model (localStorage), applied with a scale -------------------------

function vectors() {
  try { return JSON.parse(localStorage.getItem(vectorsKey()) || "[]"); } catch (_) { return []; }
}

function addVector(name, data) {
  const list = vectors().filter((v) => v.name !== name);
  list.push({ name, data });
  try {
    localStorage.setItem(vectorsKey(), JSON.stringify(list));
  } catch (_) {
    throw new Error("this browser's storage is full: delete saved vectors (site data) to save more");
  }
  listVectors(name);
}

function listVectors(selected) {
  const select = $("vector");
  select.replaceChildren(new Option("(choose a vector)", ""));
  vectors().forEach((v, k) => select.append(new Option(v.name, String(k))));
  if (selected !== undefined) select.value = String(vectors().findIndex((v) => v.name === selected));
}

async function saveVector() {
  if (!E.editSid || E.editState !== "done") throw new Error("run an edit first");
  const blob = await fetchBlob(`/api/editgan/${E.editSid}/vector.npz`);
  const classes = (await api(`/api/editgan/${E.editSid}`)).class_ids.join("-");
  const name = `edit ${new Date().toLocaleTimeString()} (classes ${classes})`;
  addVector(name, await blobToDataUrl(blob));
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = `edit_vector_classes_${classes}.npz`;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

async function loadVector() {
  const file = $("load-vector").files[0];
  if (!file) return;
  addVector(file.name, await blobToDataUrl(file));
  $("load-vector").value = "";
}

async function applyVector() {
  const chosen = vectors()[Number($("vector").value)];
  if ($("vector").value === "" || !chosen) throw new Error("choose a saved edit vector or load one (.npz)");
  clearError();
  const serial = ++E.applySerial;
  if (E.applySid) {
    try { await api(`/api/editgan/${E.applySid}`, { method: "DELETE" }); } catch (_) { /* gone already */ }
  }
  const scale = Number($("vector-scale").value);
  const status = await api("/api/editgan/apply", { method: "POST", body: {
    model: app.model.name, ...startFields(), vector: chosen.data, scale, steps: Number($("apply-steps").value) } });
  E.applySid = status.id;
  persist();
  follow(status, $("apply-progress"), async (end) => {
    if (serial !== E.applySerial) return;
    if (end.state !== "done") throw new Error(`applying the vector ${end.state}: ${end.error || end.stop_reason}`);
    await showFile($("apply-result"), `/api/editgan/${end.id}/image.png`);
    $("apply-result").dataset.session = end.id;
    $("apply-caption").textContent = `${chosen.name} x ${scale}`;
  });
}

// A reload: the tab's finished or running edit is shown again.
export async function restore(store) {
  const saved = store.editgan || {};
  if (!saved.editSid || !available()) return;
  try {
    const status = await api(`/api/editgan/${saved.editSid}`);
    E.editSid = saved.editSid;
    follow(status, $("edit-progress"), (end) => showEdit(end));
  } catch (e) {
    showError(`the tab's EditGAN session is gone (${e.message})`);
  }
}
