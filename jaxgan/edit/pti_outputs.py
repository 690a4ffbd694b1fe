"""The file side of `jaxgan invert --method pti`: per-image files, the tuned generators' checkpoint metadata, the JSON
summary.

Pure host code (numpy, Pillow, json): nothing here writes a file. The CLI writes the files `pti_files` returns
(atomically) and saves each tuned generator with `jaxgan.checkpoint.save_checkpoint`. Per input image NAME:
  NAME_ws.npy       the pivot, (num_ws, w_dim) float32: the latent the tuned generator reproduces the photo from
  NAME_G/           the tuned generator as a jaxgan checkpoint (model G); its jaxgan.json names the source
                    checkpoint, the image and the pivot file (every command that takes a checkpoint takes it)
  NAME_recon.png    the tuned generator's image of the pivot
  NAME_pivot.png    the original generator's image of the pivot (before tuning)
  NAME_target.png   the target as the generator sees it
  NAME_compare.png  target | pivot on the original generator | tuned
  NAME_loss.png     the tuning losses per forward (the total and its LPIPS-AlexNet term)
and once, `invert.json` (as the other inversion methods write it, with LPIPS (vgg and alex), MSE and PSNR before and
after tuning).
"""

import dataclasses
from pathlib import Path

import numpy as np

from jaxgan.edit.invert_outputs import loss_plot, unique_names
from jaxgan.files import json_writer
from jaxgan.images import png_writer

SUFFIXES = {"latent": "_ws.npy", "generator": "_G", "image": "_recon.png", "pivot_image": "_pivot.png",
            "target": "_target.png", "comparison": "_compare.png", "loss_plot": "_loss.png"}


def output_names(name: str) -> dict[str, str]:
    return {role: name + suffix for role, suffix in SUFFIXES.items()}


def _number(value):
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None


def _metrics(phase: dict, i: int) -> dict:
    return {k: _number(phase[k][i]) for k in ("lpips", "lpips_alex", "mse", "psnr")}


def forwards_made(losses: np.ndarray) -> np.ndarray:
    """The rows of one image's tuning losses that are forwards it made (the NaN rows after its stop dropped)."""
    losses = np.asarray(losses)
    return losses[~np.all(np.isnan(losses), axis=-1)]


def generator_meta(*, checkpoint, image, pivot_file: str, settings: dict, before: dict, after: dict,
                   updates: int) -> dict:
    """The sidecar metadata of one image's tuned generator."""
    return {"source": {"kind": "pti", "checkpoint": str(Path(checkpoint).resolve()),
                       "image": str(Path(image).resolve()), "pivot": pivot_file},
            "pti": {"settings": settings, "updates": updates, "before": before, "after": after}}


def _settings_doc(settings: dict) -> dict:
    return {**settings, "config": dataclasses.asdict(settings["config"])}


def pti_files(sources, targets, result: dict, *, checkpoint, settings: dict, names=None):
    """({file name: write(file)}, {directory name: generator meta}, invert.json entries, report lines) for the
    result of `pti.pti_images` on the images read from `sources` (named `names`, default `unique_names(sources)`);
    `settings` holds the PTIConfig under "config". The summary is `summary_file` of the entries."""
    from jaxgan.sampling import to_uint8
    names = unique_names(sources) if names is None else names
    target_pixels = to_uint8(np.stack(targets))
    tuned_pixels = to_uint8(result["after"]["images"])
    pivot_pixels = to_uint8(result["before"]["images"])
    loss_names = list(result["loss_names"])
    settings = _settings_doc(settings)
    files, generators, entries, lines = {}, {}, [], []
    for i, (name, path) in enumerate(zip(names, sources)):
        out = output_names(name)
        rows = forwards_made(result["losses"][i])
        plotted = {label: rows[:, loss_names.index(label)] for label in ("loss", "lpips")}
        before, after = _metrics(result["before"], i), _metrics(result["after"], i)
        files.update({
            out["latent"]: lambda f, w=np.asarray(result["ws"][i], np.float32): np.save(f, w),
            out["image"]: png_writer(tuned_pixels[i]),
            out["pivot_image"]: png_writer(pivot_pixels[i]),
            out["target"]: png_writer(target_pixels[i]),
            out["comparison"]: png_writer(np.concatenate([target_pixels[i], pivot_pixels[i], tuned_pixels[i]],
                                                         axis=1)),
            out["loss_plot"]: png_writer(loss_plot(plotted, f"{name}: PTI tuning, LPIPS (alex) "
                                                            f"{float(result['before']['lpips_alex'][i]):.4f} -> "
                                                            f"{float(result['after']['lpips_alex'][i]):.4f}")),
        })
        updates = int(result["updates"][i])
        generators[out["generator"]] = generator_meta(checkpoint=checkpoint, image=path, pivot_file=out["latent"],
                                                      settings=settings, before=before, after=after,
                                                      updates=updates)
        entries.append({"name": name, "source": str(Path(path).resolve()), **after, "before": before,
                        "updates": updates, "stopped_early": bool(result["stopped_early"][i]),
                        "final_losses": {k: _number(v) for k, v in zip(loss_names, rows[-1])} if len(rows) else {},
                        "outputs": out})
        b, a = result["before"], result["after"]
        lines.append(f"{name}: LPIPS (vgg) {float(b['lpips'][i]):.4f} -> {float(a['lpips'][i]):.4f}, LPIPS (alex) "
                     f"{float(b['lpips_alex'][i]):.4f} -> {float(a['lpips_alex'][i]):.4f}, PSNR "
                     f"{float(b['psnr'][i]):.2f} -> {float(a['psnr'][i]):.2f} dB after {updates} tuning steps"
                     f"{' (reached the LPIPS threshold)' if result['stopped_early'][i] else ''}")
    return files, generators, entries, lines


def summary_file(entries: list[dict], *, checkpoint, lpips_checkpoint, lpips_alex_checkpoint, settings: dict,
                 loss_names, pivot_loss_names=None):
    """The writer of invert.json (SUMMARY_NAME) for the entries of `pti_files` (every image's, in order)."""
    doc = {"checkpoint": str(Path(checkpoint).resolve()), "lpips_checkpoint": str(Path(lpips_checkpoint).resolve()),
           "lpips_alex_checkpoint": str(Path(lpips_alex_checkpoint).resolve()), "settings": _settings_doc(settings),
           "loss_names": list(loss_names), "images": entries}
    if pivot_loss_names:
        doc["pivot_loss_names"] = list(pivot_loss_names)
    return json_writer(doc)
