// The editor's start: the token, the models, the tabs, the shared image controls and the keyboard.

import { api, initToken } from "./api.js";
import { $, app, clearError, emit, guarded, load, save, setSource, showError } from "./state.js";
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

function listModels(models) {
  app.models = models;
  $("model").replaceChildren(...models.map((m) => new Option(
    m.derived_from ? `${m.name} (tuned from ${m.derived_from})` : `${m.name} (${m.resolution} px)`, m.name)));
}

// A served model that /api/models does not list (a PTI session's tuned generator), added to the menu.
async function addModel(name) {
  if (!app.models.some((m) => m.name === name)) {
    listModels([...app.models, await api(`/api/models/${encodeURIComponent(name)}`)]);
  }
}

// Switch to a model the server has just added for this tab.
async function useModel(name) {
  await addModel(name);
  chooseModel(name);
  await emit("model");
}

// Render the seed as the current image; every panel starts over on it.
export async function newImage(source) {
  clearError();
  const chosen = source || { seed: Number($("seed").value), trunc: Number($("trunc").value) };
  if (chosen.seed !== undefined && !(Number.isInteger(chosen.seed) && chosen.seed >= 0 && chosen.seed < 2 ** 32)) {
    throw new Error("the seed must be an integer in [0, 2**32)");
  }
  if (chosen.trunc !== undefined && !Number.isFinite(chosen.trunc)) throw new Error("the truncation must be a number");
  setSource(chosen);
  await emit("image", chosen);
}

async function boot() {
  initToken();
  window.addEventListener("unhandledrejection", (e) => { e.preventDefault(); showError(e.reason); });
  window.addEventListener("error", (e) => showError(e.message));
  $("error-close").addEventListener("click", clearError);
  const [models, health] = await Promise.all([api("/api/models"), api("/api/health")]);
  if (!models.length) throw new Error("the server serves no models");
  listModels(models);
  app.limits = health.limits || {};
  const store = load();
  if (store.model) await addModel(store.model).catch(() => {});  // a tuned generator this tab made, if still served
  chooseModel(store.model);
  for (const panel of Object.values(PANELS)) panel.init({ newImage, showTab, useModel });
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
    setSource(store.source);
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
