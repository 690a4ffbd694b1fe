// What the panels share: the server's models and limits, the current model and image source, the error line,
// and the tab's own store (sessionStorage: each tab is its own user, and a reload of the tab finds its sessions).

const STORE_KEY = "jaxgan.tab";

export const app = {
  models: [],       // /api/models
  limits: {},       // /api/health "limits"
  model: null,      // the chosen model's description
  source: null,     // the current image: {seed, trunc} or {ws: data URL of an .npy latent, label}
  listeners: {},
};

export function on(name, fn) {
  (app.listeners[name] = app.listeners[name] || []).push(fn);
}

// Call the listeners; resolves once the asynchronous ones have finished.
export function emit(name, ...args) {
  return Promise.all((app.listeners[name] || []).map((fn) => fn(...args)));
}

export function load() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE_KEY) || "{}");
  } catch (_) {
    return {};
  }
}

// Merge `fields` into the tab's store.
export function save(fields) {
  const store = { ...load(), ...fields };
  try {
    sessionStorage.setItem(STORE_KEY, JSON.stringify(store));
  } catch (_) { /* a full store only loses what a reload would restore */ }
}

export const $ = (id) => document.getElementById(id);

// Errors are one line on the page (the server's own message), never a blank page or a console trace.
export function showError(error) {
  const text = (error && error.message) || String(error);
  $("error-text").textContent = text.split("\n")[0];
  $("error").hidden = false;
}

export function clearError() {
  $("error").hidden = true;
  $("error-text").textContent = "";
}

// Run an async action, showing its failure as the error line; returns its value or undefined.
export async function guarded(action) {
  try {
    return await action();
  } catch (e) {
    showError(e);
    return undefined;
  }
}

// The start of a request that begins from the current image, as the API takes it.
export function startFields() {
  const source = app.source;
  if (!source) throw new Error("render an image first (New image)");
  return source.ws !== undefined ? { ws: source.ws } : { seed: source.seed, trunc: source.trunc };
}

// A generate or segment request for the current image: {model, seeds: [seed], trunc} or {model, ws}.
export function imageRequest() {
  const start = startFields();
  return start.ws !== undefined ? { model: app.model.name, ws: start.ws }
    : { model: app.model.name, seeds: [start.seed], trunc: start.trunc };
}

// Make `source` the current image (kept in the tab's store, named in the header).
export function setSource(source) {
  app.source = source;
  save({ source });
  $("source").textContent = source.ws !== undefined ? `latent: ${source.label || "uploaded"}`
    : `seed ${source.seed}, truncation ${source.trunc}`;
}
