"""The file side of `jaxgan invert`: output names, the side-by-side and loss-curve images, the JSON summary.

Pure host code (numpy, Pillow, json): no JAX here, and nothing here writes a file; the CLI writes what
`output_files` and `summary_file` return, atomically. Images are uint8 [H, W, C] with C = 1 or 3.

Per input image NAME (the file's stem, made unique) the command writes:
  NAME_ws.npy       the latent, (num_ws, w_dim) float32 (`jaxgan generate --ws` takes it)
  NAME_recon.png    the reconstruction: the latent's image (with NAME_noise.npz for the projector)
  NAME_target.png   the target as the generator sees it (centre-cropped and resized)
  NAME_compare.png  target | reconstruction, side by side
  NAME_loss.png     the loss curves: the total loss and its LPIPS term per step
  NAME_noise.npz    projector (space w) only: the optimised noise map of every synthesis layer
and once, `invert.json`. The suffixes never let one image's files collide with another's.
"""

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jaxgan.files import json_writer
from jaxgan.images import default_font, png_writer

SUMMARY_NAME = "invert.json"
SUFFIXES = {"latent": "_ws.npy", "image": "_recon.png", "target": "_target.png", "comparison": "_compare.png",
            "loss_plot": "_loss.png", "noise": "_noise.npz"}

PLOT_WIDTH, PANEL_HEIGHT, PANEL_GAP = 640, 170, 44
PLOT_MARGINS = (78, 62, 16, 40)  # left, top, right, bottom
SERIES_COLORS = {"loss": (31, 119, 180), "lpips": (255, 127, 14)}


# ----------------------------------------------------------------------------------------------------------------
# Names


def unique_names(paths) -> list[str]:
    """The output name of each input: its stem, with '-2', '-3', ... added where stems collide (ignoring case, for
    case-insensitive file systems), in command-line order."""
    stems = [Path(p).stem or "image" for p in paths]
    taken = {s.lower() for s in stems}
    used, names = set(), []
    for stem in stems:
        name, k = stem, 1
        # a suffixed name may not be another input's own stem either
        while name.lower() in used or (name != stem and name.lower() in taken):
            k += 1
            name = f"{stem}-{k}"
        used.add(name.lower())
        names.append(name)
    return names


# ----------------------------------------------------------------------------------------------------------------
# Images


def side_by_side(target: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """target | reconstruction, [H, 2W, C] uint8."""
    if target.shape != reconstruction.shape:
        raise ValueError(f"target {target.shape} and reconstruction {reconstruction.shape} differ in shape")
    return np.concatenate([target, reconstruction], axis=1)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _panel(draw, box, values: np.ndarray, label: str, color, font, small, last: bool) -> None:
    """One series in the axes box (x0, y0, x1, y1): its line, the y range at the axis ends, the step range."""
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(0, 0, 0))
    steps = len(values)
    ok = values[np.isfinite(values)]
    if ok.size:
        heading = f"{label}: min {_fmt(ok.min())}, final {_fmt(values[-1])}"
    else:
        heading = f"{label}: {'no optimisation steps' if steps == 0 else 'no finite values'}"
    draw.line([(x0, y0 - 8), (x0 + 16, y0 - 8)], fill=color, width=2)
    draw.text((x0 + 22, y0 - 8), heading, fill=(0, 0, 0), font=font, anchor="lm")
    if steps and last:
        draw.text((x0 + 4, y1 + 6), "1", fill=(0, 0, 0), font=small, anchor="la")
        draw.text((x1 - 4, y1 + 6), str(steps), fill=(0, 0, 0), font=small, anchor="ra")
        draw.text(((x0 + x1) / 2, y1 + 6), "step", fill=(0, 0, 0), font=small, anchor="ma")
    if not ok.size:
        return
    lo, hi = float(ok.min()), float(ok.max())
    log = lo > 0 and hi / lo >= 20  # the projector's total loss falls by orders of magnitude
    transform = np.log10 if log else (lambda v: v)
    t_lo, t_hi = float(transform(lo)), float(transform(hi))
    if t_hi - t_lo <= 1e-12 * max(1.0, abs(t_hi)):
        t_lo, t_hi = t_lo - 0.5, t_hi + 0.5

    def xy(i, value):  # index 0 ... steps - 1 is step 1 ... S
        fx = 0.5 if steps == 1 else i / (steps - 1)
        fy = (float(transform(value)) - t_lo) / (t_hi - t_lo)
        return x0 + 4 + fx * (x1 - x0 - 8), y1 - 4 - fy * (y1 - y0 - 8)

    run = []  # the line breaks at non-finite values
    for i, value in enumerate(list(values) + [np.nan]):
        if math.isfinite(value):
            run.append(xy(i, value))
            continue
        if len(run) > 1:
            draw.line(run, fill=color, width=2)
        elif len(run) == 1:
            (px, py), = run
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=color)
        run = []
    draw.text((x0 - 6, y0 + 2), _fmt(hi), fill=(0, 0, 0), font=small, anchor="ra")
    draw.text((x0 - 6, y1 - 2), _fmt(lo), fill=(0, 0, 0), font=small, anchor="rd")
    draw.text((x0 - 6, (y0 + y1) / 2), "log" if log else "linear", fill=(120, 120, 120), font=small, anchor="rm")


def loss_plot(series: dict[str, np.ndarray], title: str = "") -> np.ndarray:
    """Per-step curves drawn with Pillow, one panel per series ({label: [steps]}): [H, W, 3] uint8.

    Steps run 1 ... S along x. Each panel has its own y range, labelled with the smallest and largest value; it is
    logarithmic when the values are positive and span a factor of 20 or more (the projector's total loss, which
    the noise regulariser dominates at first), linear otherwise. The panel's heading gives the series' minimum
    and final value. Non-finite values break the line."""
    from PIL import Image, ImageDraw
    width = PLOT_WIDTH
    left, top, right, bottom = PLOT_MARGINS
    count = max(len(series), 1)
    height = top + count * (PANEL_HEIGHT + PANEL_GAP) - PANEL_GAP + bottom
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font, small = default_font(13), default_font(11)
    if title:
        draw.text((8, 8), title, fill=(0, 0, 0), font=font)
    for k, (label, values) in enumerate(series.items()):
        y0 = top + k * (PANEL_HEIGHT + PANEL_GAP)
        _panel(draw, (left, y0, width - right, y0 + PANEL_HEIGHT), np.asarray(values, np.float64).reshape(-1),
               label, SERIES_COLORS.get(label, (44, 160, 44)), font, small, last=k == len(series) - 1)
    return np.asarray(canvas)


# ----------------------------------------------------------------------------------------------------------------
# Per-image files and the summary


def output_names(name: str, with_noise: bool) -> dict[str, str]:
    """{role: file name} of one image's outputs."""
    return {role: name + suffix for role, suffix in SUFFIXES.items() if with_noise or role != "noise"}


def output_files(name: str, *, target: np.ndarray, reconstruction: np.ndarray, ws: np.ndarray,
                 losses: np.ndarray, loss_names, noise: dict[str, np.ndarray] | None = None,
                 title: str = "") -> dict[str, Callable[[Any], None]]:
    """{file name: write(file)} for one image: target and reconstruction as uint8 [H, W, C], ws [num_ws, w_dim],
    losses [steps, len(loss_names)] (the 'loss' column and the 'lpips' column are plotted), noise {buffer name:
    [h, w]} (projector only)."""
    names = output_names(name, noise is not None)
    columns = list(loss_names)
    losses = np.asarray(losses, np.float64).reshape(-1, len(columns))
    plotted = {label: losses[:, columns.index(label)] for label in ("loss", "lpips") if label in columns}
    files = {
        names["latent"]: lambda f: np.save(f, np.asarray(ws, np.float32)),
        names["image"]: png_writer(reconstruction),
        names["target"]: png_writer(target),
        names["comparison"]: png_writer(side_by_side(target, reconstruction)),
        names["loss_plot"]: png_writer(loss_plot(plotted, title)),
    }
    if noise is not None:
        arrays = {k: np.asarray(v, np.float32) for k, v in noise.items()}
        files[names["noise"]] = lambda f: np.savez(f, **arrays)
    return files


def _number(value) -> float | None:
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


def image_entry(name: str, source, *, lpips, mse, psnr, final_losses: dict, with_noise: bool) -> dict:
    """One image's part of invert.json."""
    return {"name": name, "source": str(Path(source).resolve()), "lpips": _number(lpips), "mse": _number(mse),
            "psnr": _number(psnr), "final_losses": {k: _number(v) for k, v in final_losses.items()},
            "outputs": output_names(name, with_noise)}


def summary(*, checkpoint, lpips_checkpoint, settings: dict, loss_names, images: list[dict]) -> dict:
    return {"checkpoint": str(Path(checkpoint).resolve()), "lpips_checkpoint": str(Path(lpips_checkpoint).resolve()),
            "settings": settings, "loss_names": list(loss_names), "images": images}


def summary_file(doc: dict) -> Callable[[Any], None]:
    return json_writer(doc)


def batch_files(G, names, sources, targets, result: dict, *, settings: dict):
    """({file name: write(file)}, invert.json entries, report lines) of the images of one result of
    `invert.invert_images` (or of its `on_batch`): image i = result["rows"][k] (default: k) has the output name
    names[i], was read from sources[i] and is targets[i] ([H, W, C] in [-1, 1]); targets may be any sequence."""
    from jaxgan.edit import invert
    from jaxgan.sampling import to_uint8
    space, method = settings["space"], settings["method"]
    loss_names = result["loss_names"]
    noise_keys = invert.noise_buffer_names(G)  # the order of result["noise"]
    rows = list(result.get("rows", range(len(result["ws"]))))
    recon_pixels = to_uint8(result["images"])
    with_noise = space == "w" and bool(noise_keys)  # StyleGAN3 generators have no noise maps
    files, entries, lines = {}, [], []
    for k, i in enumerate(rows):
        name, path = names[i], sources[i]
        losses = result["losses"][k]
        noise = {key: maps[k] for key, maps in zip(noise_keys, result["noise"])} if with_noise else None
        files.update(output_files(
            name, target=to_uint8(targets[i]), reconstruction=recon_pixels[k], ws=result["ws"][k], losses=losses,
            loss_names=loss_names, noise=noise,
            title=f"{name}: {method if space in method else f'{method} ({space})'}, "
                  f"final LPIPS {float(result['lpips'][k]):.4f}"))
        entries.append(image_entry(name, path, lpips=result["lpips"][k], mse=result["mse"][k], psnr=result["psnr"][k],
                                   final_losses=dict(zip(loss_names, losses[-1])) if len(losses) else {},
                                   with_noise=with_noise))
        lines.append(f"{name}: LPIPS {float(result['lpips'][k]):.4f}, MSE {float(result['mse'][k]):.5f}, "
                     f"PSNR {float(result['psnr'][k]):.2f} dB")
    return files, entries, lines


def summary_of(entries: list[dict], *, checkpoint, lpips_checkpoint, settings: dict, loss_names) -> dict:
    """invert.json's document for image entries (`image_entry`); `settings` holds the method's config dataclass
    under "config"."""
    import dataclasses
    settings = {**settings, "config": dataclasses.asdict(settings["config"])}
    return summary(checkpoint=checkpoint, lpips_checkpoint=lpips_checkpoint, settings=settings, loss_names=loss_names,
                   images=entries)


def finished(outdir: Path, names, with_noise: bool) -> list[bool]:
    """Whether each image NAME of `names` has all its outputs in `outdir` (what --skip-existing skips)."""
    return [all((Path(outdir) / f).exists() for f in output_names(name, with_noise).values()) for name in names]


def previous_entries(path: Path, settings: dict) -> dict[str, dict]:
    """{name: entry} of an earlier invert.json at `path` made with the same settings (as `summary_of` writes them),
    {} when there is none or it was made otherwise, so a run finished with --skip-existing keeps the entries of
    the images it skips."""
    import dataclasses
    import json
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    expected = json.loads(json.dumps({**settings, "config": dataclasses.asdict(settings["config"])}))
    if not isinstance(doc, dict) or doc.get("settings") != expected:
        return {}
    return {entry["name"]: entry for entry in doc.get("images", []) if isinstance(entry, dict) and "name" in entry}
