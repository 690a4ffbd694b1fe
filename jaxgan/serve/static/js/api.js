// The jaxgan serve API as the editor uses it: JSON requests with the tab's token, errors as one-line messages,
// session events over WebSockets, images and files fetched as blobs. No library: fetch and WebSocket only.

const TOKEN_KEY = "jaxgan.token";

// A token given once as ?token=... is kept for the tab (sessionStorage) and removed from the address bar.
export function initToken() {
  const url = new URL(window.location.href);
  const given = url.searchParams.get("token");
  if (given !== null) {
    sessionStorage.setItem(TOKEN_KEY, given);
    url.searchParams.delete("token");
    window.history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function headers(json) {
  const out = {};
  if (json) out["Content-Type"] = "application/json";
  const t = token();
  if (t) out["Authorization"] = "Bearer " + t;
  return out;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body && body.error) message = body.error;
  } catch (_) { /* not JSON: keep the status line */ }
  return new ApiError(message, response.status);
}

// JSON in, JSON out; a non-2xx answer throws ApiError with the server's one-line {"error"}.
export async function api(path, { method = "GET", body } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method, headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(`cannot reach the server (${e.message})`, 0);
  }
  if (!response.ok) throw await failure(response);
  return response.json();
}

// A file of the API (image, latent, vector) as a Blob.
export async function fetchBlob(path) {
  let response;
  try {
    response = await fetch(path, { headers: headers(false) });
  } catch (e) {
    throw new ApiError(`cannot reach the server (${e.message})`, 0);
  }
  if (!response.ok) throw await failure(response);
  return response.blob();
}

// An address for <a href> and <img src>, which cannot send headers: the token goes in the query.
export function fileUrl(path) {
  const t = token();
  return t ? `${path}?token=${encodeURIComponent(t)}` : path;
}

// Use an API file through an object URL that lives only while `use(url)` runs (a decoded <img> keeps its pixels).
export async function withFileUrl(path, use) {
  const url = URL.createObjectURL(await fetchBlob(path));
  try {
    return await use(url);
  } finally {
    URL.revokeObjectURL(url);
  }
}

export function blobToDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

// Watch a session's events: onEvent(message) for each status / step / end message; returns the WebSocket.
// The server replays the current run's earlier steps, so a client that connects late or again misses none.
export function watch(kind, sid, { onEvent, onClose, imageEvery = 1 }) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  const params = new URLSearchParams({ image_every: String(imageEvery), replay: "1" });
  const t = token();
  if (t) params.set("token", t);
  const socket = new WebSocket(`${scheme}//${window.location.host}/api/${kind}/${sid}/events?${params}`);
  let ended = false;
  socket.onmessage = (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "end" || event.type === "error") ended = true;
    onEvent(event);
  };
  socket.onclose = (e) => {
    if (onClose) onClose({ ended, code: e.code, reason: e.reason });
  };
  return socket;
}

// A fixed-step session (inversion, EditGAN) on a progress bar; `onEnd(status)` once it has ended. The server
// sends the status first and the end at once for a session that is not running; a session it no longer knows
// ends as failed with the server's message.
export function followProgress(kind, sid, bar, onEnd) {
  const progress = (s) => { bar.max = Math.max(1, s.max_steps); bar.value = s.step; };
  return watch(kind, sid, {
    onEvent: (event) => {
      if (event.type === "status" || event.type === "step") progress(event);
      if (event.type === "end") { progress(event); onEnd(event); }
      if (event.type === "error") onEnd({ id: sid, state: "failed", error: event.error });
    },
  });
}
