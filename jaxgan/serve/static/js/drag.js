// The Drag panel: DragGAN on the current image, as the official GUI's controls (points, flexible / fixed area
// brushes, start / stop, step size, max steps, lambda, w / w+) plus undo, downloads and a photo -> inversion ->
// drag path. A session is created on the first Start; later Starts resume it with the points as they are, so
// several drags in a row stay one session and Undo goes back one drag at a time.

import { api, blobToDataUrl, fetchBlob, fileUrl, followProgress, watch, withFileUrl } from "./api.js";
import { $, app, clearError, guarded, imageRequest, on, save, setSource, showError, startFields } from "./state.js";
import { anySet, brushRadius, decodeMap, encodeMap, loadImage, mapToPng, paintStroke, pixelAt, pngToMap } from "./pixels.js";

const S = {
  sid: null, state: "idle", step: 0, maxSteps: 0, runs: 0,
  points: [], targets: [], distances: [],
  mask: null,            // Uint8Array, 1 = may move (flexible); nothing painted = all fixed, which the renderer ignores
  maskLayer: null,       // the mask as an off-screen canvas at image resolution (drawn scaled)
  image: null, imageSerial: 0,
  session: null,         // the settings a session was created with that a resume cannot change
  socket: null, reconnects: 0,
  painting: null,
};
let newImage = null;
let useModel = null;

const canvas = () => $("drag-canvas");
const size = () => app.model.resolution;

export function init(context) {
  newImage = context.newImage;
  useModel = context.useModel;
  on("model", defaults);
  on("image", () => guarded(startOver));
  const c = canvas();
  c.addEventListener("pointerdown", (e) => guarded(() => pointerDown(e)));
  c.addEventListener("pointermove", pointerMove);
  window.addEventListener("pointerup", pointerUp);
  $("start").addEventListener("click", () => guarded(start));
  $("stop").addEventListener("click", () => guarded(stop));
  $("undo").addEventListener("click", () => guarded(undo));
  $("reset-points").addEventListener("click", () => { S.points = []; S.targets = []; S.distances = []; persist(); draw(); });
  $("reset-mask").addEventListener("click", () => { S.mask = new Uint8Array(size() * size()); maskChanged(); });
  $("show-mask").addEventListener("change", draw);
  $("upload").addEventListener("change", () => guarded(uploadPhoto));
  $("invert-space").addEventListener("change", invertDefaults);
  $("invert-method").addEventListener("change", invertDefaults);
  for (const id of ["space", "lr", "steps", "lambda", "brush"]) $(id).addEventListener("change", persist);
}

export function shown() {
  draw();
}

// The model's recommended settings (its checkpoint's, as `jaxgan drag` uses them), capped by the server's limits.
function defaults() {
  const d = app.model.drag_defaults;
  $("space").value = d.space;
  $("lr").value = d.lr;
  $("steps").value = Math.min(d.max_steps, app.limits.max_steps ?? d.max_steps);
  $("lambda").value = d.lambda_mask;
  $("brush").value = brushRadius(app.model.resolution);
  // PTI when the server has its networks (a photo then keeps its details: the generator is tuned on it)
  const canPTI = app.model.capabilities.includes("pti");
  const option = $("invert-method").querySelector("option[value='pti']");
  option.disabled = !canPTI;
  option.title = canPTI ? "" : app.model.hints.pti;
  $("invert-method").value = canPTI ? "pti" : "latent";
  invertDefaults();
  const canInvert = app.model.capabilities.includes("invert");
  $("invert-info").textContent = canInvert ? "" : app.model.hints.invert;
  $("invert-info").classList.toggle("hint", !canInvert);
}

function invertDefaults() {
  const pti = $("invert-method").value === "pti";
  const cap = app.limits.max_steps ?? Infinity;
  $("invert-tune-label").hidden = !pti;
  if (pti) {
    const d = app.model.pti_defaults;
    $("invert-steps").value = Math.min(d.pivot_steps, cap);
    $("invert-tune-steps").value = Math.min(d.tune_steps, cap);
    return;
  }
  const d = app.model.invert_defaults;
  if (!d) return;
  $("invert-steps").value = Math.min(d.steps[$("invert-space").value], cap);
}

function settings() {
  const number = (id, what) => {
    const v = Number($(id).value);
    if ($(id).value === "" || !Number.isFinite(v)) throw new Error(`${what} must be a number`);
    return v;
  };
  return { space: $("space").value, lr: number("lr", "the step size"), max_steps: number("steps", "max steps"),
           lambda_mask: number("lambda", "lambda") };
}

function persist() {
  save({ drag: {
    sid: S.sid, session: S.session, points: S.points, targets: S.targets,
    mask: S.mask ? encodeMap(S.mask) : null,
    settings: { space: $("space").value, lr: $("lr").value, steps: $("steps").value, lambda: $("lambda").value,
                brush: $("brush").value },
  } });
}

// -- the canvas ------------------------------------------------------------------------------------------------

function maskChanged() {
  const n = size();
  const layer = document.createElement("canvas");
  layer.width = layer.height = n;
  const context = layer.getContext("2d");
  const data = context.createImageData(n, n);
  for (let k = 0; k < S.mask.length; k++) {  // fixed pixels are dimmed when some area is marked flexible
    data.data[4 * k + 3] = S.mask[k] ? 0 : 140;
  }
  context.putImageData(data, 0, 0);
  S.maskLayer = anySet(S.mask) ? layer : null;
  if (!S.painting) persist();  // a stroke is stored once, when it ends
  draw();
}

function draw() {
  const c = canvas();
  const context = c.getContext("2d");
  const n = size();
  context.imageSmoothingEnabled = false;  // show the generator's pixels as they are
  context.clearRect(0, 0, c.width, c.height);
  if (S.image) context.drawImage(S.image, 0, 0, c.width, c.height);
  if (S.maskLayer && $("show-mask").checked) context.drawImage(S.maskLayer, 0, 0, c.width, c.height);
  const at = ([row, col]) => [(col + 0.5) * c.width / n, (row + 0.5) * c.height / n];
  context.lineWidth = 2;
  S.points.forEach((p, i) => {
    const [x, y] = at(p);
    const target = S.targets[i];
    if (target) {
      const [tx, ty] = at(target);
      context.strokeStyle = "#ffffff";
      context.beginPath(); context.moveTo(x, y); context.lineTo(tx, ty); context.stroke();
      dot(context, tx, ty, "#1e64ff");
    }
    dot(context, x, y, "#ff2020");
  });
  c.dataset.sessionId = S.sid || "";
  c.dataset.points = JSON.stringify(S.points);
  c.dataset.targets = JSON.stringify(S.targets);
  c.dataset.state = S.state;
  c.dataset.ready = S.image ? "1" : "0";  // an image is shown: clicks place points
  $("drag-status").textContent = S.state;
  $("drag-steps").textContent = String(S.step);
  $("drag-steps").dataset.max = String(S.maxSteps);
  $("drag-distances").textContent = S.distances.length ? S.distances.map((d) => d.toFixed(1)).join(", ") : "\u2013";
  $("drag-distances").dataset.values = JSON.stringify(S.distances);
  const running = S.state === "running" || S.state === "starting";
  $("start").disabled = running;
  $("stop").disabled = !running;
  $("undo").disabled = running || !S.sid || S.runs === 0;
  links();
}

function dot(context, x, y, color) {
  context.fillStyle = color;
  context.strokeStyle = "#000000";
  context.beginPath(); context.arc(x, y, 6, 0, 2 * Math.PI); context.fill(); context.stroke();
}

function links() {
  const set = (id, path) => {
    const a = $(id);
    if (path) { a.href = fileUrl(path); a.removeAttribute("aria-disabled"); }
    else { a.removeAttribute("href"); a.setAttribute("aria-disabled", "true"); }
  };
  const base = S.sid ? `/api/drag/${S.sid}` : null;
  set("download-image", base && `${base}/image.png`);
  set("download-latent", base && `${base}/latent.npy`);
  set("download-gif", base && S.runs > 0 && S.step > 0 ? `${base}/drag.gif` : null);
}

function pointerDown(e) {
  if (!S.image) return;
  const mode = document.querySelector("input[name=mode]:checked").value;
  const at = pixelAt(canvas(), e, size());
  if (S.state === "running" || S.state === "starting") {
    throw new Error("the drag is running: stop it before changing points or the mask");
  }
  if (mode === "points") {
    clearError();
    const point = [at.row, at.col];
    if (S.targets.length < S.points.length) S.targets.push(point);
    else if (S.points.length >= app.model.drag_defaults.max_points) {
      throw new Error(`at most ${app.model.drag_defaults.max_points} points per drag on this server`);
    } else S.points.push(point);
    S.distances = [];
    persist();
    draw();
    return;
  }
  if (!S.mask) S.mask = new Uint8Array(size() * size());
  S.painting = { value: mode === "flexible" ? 1 : 0, last: at };
  canvas().setPointerCapture(e.pointerId);
  paintStroke(S.mask, size(), at, at, Number($("brush").value) || 1, S.painting.value);
  maskChanged();
}

function pointerMove(e) {
  if (!S.painting) return;
  const at = pixelAt(canvas(), e, size());
  paintStroke(S.mask, size(), S.painting.last, at, Number($("brush").value) || 1, S.painting.value);
  S.painting.last = at;
  maskChanged();
}

function pointerUp() {
  if (!S.painting) return;
  S.painting = null;
  persist();
}

// -- the session -----------------------------------------------------------------------------------------------

async function showImage(src) {
  const serial = ++S.imageSerial;
  const image = await loadImage(src);
  if (serial === S.imageSerial) { S.image = image; draw(); }
}

async function refreshImage() {
  await withFileUrl(`/api/drag/${S.sid}/image.png`, showImage);
}

function applyStatus(status) {
  S.state = status.state;
  S.step = status.step;
  S.maxSteps = status.max_steps;
  S.runs = status.runs;
  S.points = status.points;
  S.targets = status.targets;
  S.distances = status.distances;
  persist();
  draw();
}

async function dropSession() {
  if (S.socket) { S.socket.onclose = null; S.socket.close(); S.socket = null; }
  const sid = S.sid;
  S.sid = null; S.session = null; S.state = "idle"; S.step = 0; S.runs = 0;
  if (sid) {
    try { await api(`/api/drag/${sid}`, { method: "DELETE" }); } catch (_) { /* expired already */ }
  }
}

// A new image (app.source): the old session (if any) is deleted, the points and mask start empty.
async function startOver() {
  await dropSession();
  S.image = null;
  S.points = []; S.targets = []; S.distances = [];
  S.mask = new Uint8Array(size() * size());
  S.maskLayer = null;
  persist();
  draw();
  await showImage((await api("/api/generate", { method: "POST", body: imageRequest() })).images[0]);
}

export async function start() {
  if (S.state === "running" || S.state === "starting") return;
  if (!S.points.length || S.targets.length < S.points.length) {
    throw new Error("click a handle point on the image, then its target");
  }
  clearError();
  const chosen = settings();
  const before = S.state;
  S.state = "starting";  // until the server answers: a second Start (or Space) does nothing
  draw();
  try {
    applyStatus(await begin(chosen));
  } catch (e) {
    S.state = before;
    draw();
    throw e;
  }
  attach();
}

// Create the session (the first drag) or resume it with the points as they are now; returns its status.
async function begin(chosen) {
  if (S.sid && (chosen.space !== S.session.space || chosen.lambda_mask !== S.session.lambda_mask)) {
    // w / w+ and lambda are fixed for a session: go on from its latent in a new one (its undo history ends here).
    const ws = await blobToDataUrl(await fetchBlob(`/api/drag/${S.sid}/latent.npy`));
    await dropSession();
    setSource({ ws, label: "the dragged latent" });
  }
  const painted = S.mask && anySet(S.mask);
  const mask = painted || S.sid ? await mapToPng(S.mask || new Uint8Array(size() * size()), size(), (v) => (v ? 255 : 0)) : null;
  if (S.sid) {
    return api(`/api/drag/${S.sid}/resume`, { method: "POST", body: {
      points: S.points, targets: S.targets, mask, lr: chosen.lr, max_steps: chosen.max_steps } });
  }
  const status = await api("/api/drag", { method: "POST", body: {
    model: app.model.name, ...startFields(), points: S.points, targets: S.targets, mask, ...chosen } });
  S.sid = status.id;
  S.session = { space: chosen.space, lambda_mask: chosen.lambda_mask };
  return status;
}

function attach() {
  if (S.socket) { S.socket.onclose = null; S.socket.close(); }
  const sid = S.sid;
  S.socket = watch("drag", sid, {
    onEvent: (event) => {
      if (sid !== S.sid) return;
      if (event.type === "status" || event.type === "end") {
        applyStatus(event);
        if (event.type === "end" && event.state === "failed") showError(event.error || "the drag failed");
      } else if (event.type === "step") {
        if (S.state !== "running") return;  // in flight when a stop answered: the stop's status is the newer
        S.step = event.step;
        S.points = event.points;
        S.distances = event.distances;
        if (event.image) guarded(() => showImage(event.image));
        draw();
      } else if (event.type === "error") {
        showError(event.error);
      }
    },
    onClose: ({ ended }) => {
      if (sid !== S.sid) return;
      S.socket = null;
      if (!ended) guarded(reattach);
    },
  });
}

// The connection dropped mid-run: read the session again and, while it runs, listen again (a few times).
async function reattach() {
  const status = await api(`/api/drag/${S.sid}`);
  applyStatus(status);
  if (status.state === "running") {
    if (++S.reconnects > 5) throw new Error("lost the connection to the session's events");
    setTimeout(attach, 500);
  }
}

export async function stop() {
  if (!S.sid || S.state !== "running") return;
  applyStatus(await api(`/api/drag/${S.sid}/stop`, { method: "POST" }));
}

export async function undo() {
  if (!S.sid) throw new Error("nothing to undo: no drag yet");
  applyStatus(await api(`/api/drag/${S.sid}/undo`, { method: "POST" }));
  await Promise.all([refreshImage(), refreshMask()]);
}

async function refreshMask() {
  const grey = await withFileUrl(`/api/drag/${S.sid}/mask.png`, (url) => pngToMap(url, size()));
  S.mask = grey.map((v) => (v > 127 ? 1 : 0));
  maskChanged();
}

// The page's own view of the session, for tests and the browser console: the mask as it will be sent.
window.jaxganDrag = { mask: () => Array.from(S.mask || []), sessionId: () => S.sid };

export function toggle() {
  guarded(S.state === "running" ? stop : start);
}

// A reload: the tab's session, points and mask as they were; a running session is watched again.
export async function restore(store) {
  const saved = store.drag || {};
  const s = saved.settings;
  if (s) {
    $("space").value = s.space; $("lr").value = s.lr; $("steps").value = s.steps; $("lambda").value = s.lambda;
    $("brush").value = s.brush;
  }
  S.mask = (saved.mask && decodeMap(saved.mask, size() * size())) || new Uint8Array(size() * size());
  S.points = saved.points || [];
  S.targets = saved.targets || [];
  if (store.invert) watchInversion(store.invert);
  if (saved.sid) {
    S.sid = saved.sid;
    S.session = saved.session;
    try {
      applyStatus(await api(`/api/drag/${saved.sid}`));
      await Promise.all([refreshImage(), refreshMask()]);
      if (S.state === "running") attach();
      return;
    } catch (e) {
      S.sid = null; S.session = null; S.state = "idle";
      showError(`the tab's drag session is gone (${e.message}); starting again from its image`);
    }
  }
  maskChanged();
  await showImage((await api("/api/generate", { method: "POST", body: imageRequest() })).images[0]);
}

// -- a photo: inversion, then its reconstruction is the image to drag ---------------------------------------------

async function uploadPhoto() {
  const file = $("upload").files[0];
  if (!file) return;
  if (!app.model.capabilities.includes("invert")) {
    $("upload").value = "";
    throw new Error("this server cannot invert photos: it was started without --lpips (the panel says which files to convert)");
  }
  clearError();
  const image = await blobToDataUrl(file);
  const steps = Number($("invert-steps").value);
  const space = $("invert-space").value;
  const body = $("invert-method").value === "pti"
    ? { model: app.model.name, image, method: "pti", space, pivot_steps: steps,
        tune_steps: Number($("invert-tune-steps").value) }
    : { model: app.model.name, image, space, steps };
  const status = await api("/api/invert", { method: "POST", body });
  $("upload").value = "";
  save({ invert: { sid: status.id, label: file.name } });
  watchInversion({ sid: status.id, label: file.name });
}

function watchInversion({ sid, label }) {
  $("invert-info").textContent = `inverting ${label}\u2026`;
  followProgress("invert", sid, $("invert-progress"), (end) => guarded(() => finishInversion(sid, label, end)));
}

async function finishInversion(sid, label, status) {
  save({ invert: null });
  if (status.state !== "done") throw new Error(`the inversion ${status.state}: ${status.error || status.stop_reason}`);
  const ws = await blobToDataUrl(await fetchBlob(`/api/invert/${sid}/latent.npy`));
  const m = status.metrics;
  let text = `${label}: PSNR ${m.psnr.toFixed(2)} dB, LPIPS ${m.lpips.toFixed(4)} (${status.space})`;
  if (status.method === "pti") {
    // the tuned generator is a model of its own: drag (and generate) on it from the pivot
    await useModel(status.tuned_model);
    const b = status.metrics_before;
    text = `${label}: PSNR ${b.psnr.toFixed(2)} \u2192 ${m.psnr.toFixed(2)} dB, LPIPS ${b.lpips.toFixed(4)} \u2192 `
      + `${m.lpips.toFixed(4)} (PTI, ${status.tuning_updates} tuning steps; editing on the tuned generator)`;
  }
  $("invert-info").textContent = text;
  $("invert-info").dataset.session = sid;  // kept until the server's TTL, so its files stay downloadable
  newImage({ ws, label: `${label} (${status.method === "pti" ? "PTI" : "inverted"})` });
}
