// The editor's start: the token, the models, the tabs, the shared image controls and the keyboard.

import { api, initToken } from "./api.js";
import { $, app, clearError, emit, guarded, load, save, showError } from "./state.js";
import * as drag from "./drag.js";
import * as editgan from "./editgan.js";
import * as generate from "./generate.js";

const PANELS = { drag, editgan, generate };

function showTab(name) {
  for (const panel of document.querySelectorAll("[data-panel]")) panel.hidden = panel.dataset.panel !== name;
  for (const tab of document.querySelectorAll("[data-tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  save({ tab: name });
  PANELS[name].shown();
}

function chooseModel(name) {
  app.model = app.models.find((m) => m.name === name) || app.models[0];
  $("model").value = app.model.name;
  save({ model: app.model.name });
}

// Render the seed as the current image; every panel starts over on it.
export async function newImage(source) {
  clearError();
  app.source = source || { seed: Number($("seed").value), trunc: Number($("trunc").value) };
  if (app.source.seed !== undefined && !(Number.isInteger(app.source.seed) && app.source.seed >= 0)) {
    showError("the seed must be an integer >= 0");
    return;
  }
  save({ source: app.source });
  $("source").textContent = app.source.ws !== undefined ? `latent: ${app.source.label || "uploaded"}`
    : `seed ${app.source.seed}, truncation ${app.source.trunc}`;
  await emit("image", app.source);
}

async function boot() {
  initToken();
  window.addEventListener("unhandledrejection", (e) => { e.preventDefault(); showError(e.reason); });
  window.addEventListener("error", (e) => showError(e.message));
  $("error-close").addEventListener("click", clearError);
  const [models, health] = await Promise.all([api("/api/models"), api("/api/health")]);
  if (!models.length) throw new Error("the server serves no models");
  app.models = models;
  app.limits = health.limits || {};
  for (const m of models) $("model").append(new Option(`${m.name} (${m.resolution} px)`, m.name));
  const store = load();
  chooseModel(store.model);
  for (const panel of Object.values(PANELS)) panel.init({ newImage, showTab });
  $("model").addEventListener("change", () => guarded(async () => {
    chooseModel($("model").value);
    await emit("model");
    await newImage();
  }));
  $("new-image").addEventListener("click", () => guarded(newImage));
  for (const tab of document.querySelectorAll("[data-tab]")) tab.addEventListener("click", () => showTab(tab.dataset.tab));
  document.addEventListener("keydown", (e) => {
    const typing = e.target instanceof HTMLInputElement && !["radio", "checkbox", "range", "button"].includes(e.target.type)
      || e.target instanceof HTMLSelectElement || e.target instanceof HTMLTextAreaElement;
    if (typing || e.ctrlKey || e.metaKey || e.altKey || $("panel-drag").hidden) return;
    if (e.code === "Space") { e.preventDefault(); drag.toggle(); }
    if (e.key === "z") { e.preventDefault(); drag.undo(); }
  });
  emit("model");
  if (store.source) {
    if (store.source.seed !== undefined) { $("seed").value = store.source.seed; $("trunc").value = store.source.trunc; }
    app.source = store.source;
    $("source").textContent = store.source.ws !== undefined ? `latent: ${store.source.label || "uploaded"}`
      : `seed ${store.source.seed}, truncation ${store.source.trunc}`;
    await drag.restore(store);
    await editgan.restore(store);
  } else {
    $("trunc").value = app.model.drag_defaults.trunc;
    await newImage();
  }
  showTab(store.tab || "drag");
  document.body.dataset.ready = "1";
}

guarded(boot);
