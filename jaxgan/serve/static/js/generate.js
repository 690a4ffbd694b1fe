// The Generate panel: a grid of seeds for the chosen model and truncation; a click opens the image in Drag.

import { api } from "./api.js";
import { $, app, clearError, guarded } from "./state.js";

let context = null;

export function init(ctx) {
  context = ctx;
  $("generate").addEventListener("click", () => guarded(generate));
}

export function shown() {
  if (!$("grid").children.length) guarded(generate);
}

async function generate() {
  const first = Number($("gen-seed").value);
  const count = Number($("gen-count").value);
  const most = app.limits.max_seeds ?? 64;
  if (!Number.isInteger(first) || first < 0) throw new Error("the first seed must be an integer >= 0");
  if (!Number.isInteger(count) || count < 1 || count > most) throw new Error(`generate 1 to ${most} images at a time`);
  clearError();
  const seeds = Array.from({ length: count }, (_, k) => first + k);
  const trunc = Number($("trunc").value);
  const out = await api("/api/generate", { method: "POST", body: { model: app.model.name, seeds, trunc } });
  const grid = $("grid");
  grid.replaceChildren();
  out.images.forEach((src, k) => {
    const figure = document.createElement("figure");
    const image = document.createElement("img");
    image.src = src;
    image.alt = `seed ${seeds[k]}`;
    image.dataset.seed = String(seeds[k]);
    image.title = `seed ${seeds[k]}, truncation ${trunc}: click to drag it`;
    image.addEventListener("click", () => {
      $("seed").value = seeds[k];
      context.showTab("drag");
      guarded(() => context.newImage({ seed: seeds[k], trunc }));
    });
    const caption = document.createElement("figcaption");
    caption.textContent = `seed ${seeds[k]}`;
    figure.append(image, caption);
    grid.append(figure);
  });
}
