"""The file side of `jaxgan drag`: reading its inputs and preparing its outputs.

Inputs: point lists (`"row,col;row,col"`), mask PNGs (white = may move, as painted in the official GUI, turned
into the renderer's 1 = fixed), starting latents (.npy) and job files (JSON, schema in `read_jobs`). Outputs: the
annotated frames and GIF of a drag, the trace arrays, the JSON summary. Host code (numpy, Pillow, json): no JAX
computation here, and nothing here writes a file; the CLI writes what `output_files` returns, atomically.

Points are (row, col) image pixels throughout, DragGAN's convention (XingangPan/DragGAN@336f120: `DragWidget`
stores `[y, x]` in `viz/drag_widget.py`, `reverse_point_pairs` in `visualizer_drag_gradio.py` converts clicks).
"""

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np

from jaxgan.edit.drag import DragJob, DragOutcome
from jaxgan.files import json_writer
from jaxgan.images import default_font, png_writer, rgb
from jaxgan.latents import read_latent

IMAGE_NAME, GIF_NAME, LATENT_NAME, SUMMARY_NAME, TRACE_NAME = (
    "drag.png", "drag.gif", "drag_ws.npy", "drag.json", "drag_trace.npz")

HANDLE_COLOR = (255, 32, 32)   # red: the tracked handle points
TARGET_COLOR = (48, 96, 255)   # blue: the targets
LINE_COLOR = (255, 255, 255)   # handle -> target
FRAME_MS, LAST_FRAME_MS = 50, 1000
GIF_MAX_SIZE = 512
GIF_MIN_SIZE = 256  # smaller images are enlarged by a whole factor (nearest) so the markers stay legible

# The per-session settings a job may give, with their defaults: `drag.DragJob`'s (the official renderer's).
SESSION_FIELDS = ("trunc", "space", "steps", "lr", "lambda_mask")
DEFAULTS = {name: getattr(DragJob, name) for name in SESSION_FIELDS}
JOB_FIELDS = {"name", "seed", "trunc", "ws", "points", "targets", "mask", "space", "steps", "lr", "lambda_mask",
              "trace"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_PAIR = re.compile(r"\s*(-?\d+)\s*,\s*(-?\d+)\s*")


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def parse_points(text: str, option: str = "--points") -> list[tuple[int, int]]:
    """'128,99; 58,179' -> [(128, 99), (58, 179)]: (row, col) pairs separated by ';' (a trailing ';' is fine)."""
    parts = [part for part in text.split(";") if part.strip()]
    pairs = [_PAIR.fullmatch(part) for part in parts]
    if not parts or not all(pairs):
        raise ValueError(f"{option} {text!r} is not a list of row,col pixel pairs like '128,99;58,179'")
    return [(int(m.group(1)), int(m.group(2))) for m in pairs]


def load_mask(path, resolution: int) -> np.ndarray:
    """A mask PNG (white = the region that may move, as painted in the official GUI) -> the renderer's mask
    [H, W] float32 with 1 = keep fixed: `1 - (grey > 127)`, from the image's greyscale with alpha ignored."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            image.load()
    except (OSError, UnidentifiedImageError) as e:
        raise ValueError(f"cannot read the mask {path}: {e}") from None
    return mask_of(image, resolution, f"the mask {path}")


def mask_of(image, resolution: int, source: str = "the mask") -> np.ndarray:
    """`load_mask` for an image already opened (a PIL image): size checked, white = may move -> 1 = fixed."""
    if image.size != (resolution, resolution):
        raise ValueError(f"{source} is {image.size[0]}x{image.size[1]} pixels, but the generator's images "
                         f"are {resolution}x{resolution}")
    if image.mode.startswith("I"):  # 16/32-bit greyscale: threshold at half range rather than clip to 8 bits
        movable = np.asarray(image).astype(np.int64) > (32767 if image.mode.startswith("I;16") else 127)
    else:
        movable = np.asarray(image.convert("L")) > 127
    return (1 - movable).astype(np.float32)


def mask_pixels(mask) -> np.ndarray:
    """The inverse of `mask_of`: the renderer's mask [H, W] (1 = keep fixed) -> uint8 grey pixels of a mask PNG,
    255 = may move, 0 = fixed."""
    fixed = np.asarray(mask)
    if fixed.ndim != 2:
        raise ValueError(f"a mask is [H, W], got shape {fixed.shape}")
    return np.where(fixed > 0.5, 0, 255).astype(np.uint8)


def mask_note(mask: np.ndarray | None) -> str | None:
    """Why a given mask will have no effect, or None. The official renderer ignores masks that are all 0 or all 1."""
    if mask is None or (mask.min() == 0 and mask.max() == 1):
        return None
    return ("the mask is white everywhere (everything may move)" if mask.max() == 0 else
            "the mask has no white pixels (nothing is marked movable)") + "; it is ignored, as in the official renderer"


@dataclasses.dataclass(frozen=True)
class Job:
    """One drag session as the command describes it: a start (seed and truncation, or a latent file), points,
    targets, an optional mask PNG and the per-session settings."""

    name: str
    points: list
    targets: list
    seed: int | None = None
    trunc: float = DEFAULTS["trunc"]
    ws: Path | None = None
    mask: Path | None = None
    space: str = DEFAULTS["space"]
    steps: int = DEFAULTS["steps"]
    lr: float = DEFAULTS["lr"]
    lambda_mask: float = DEFAULTS["lambda_mask"]
    trace: bool = False

    def start(self) -> dict:
        return {"seed": self.seed, "trunc": self.trunc} if self.ws is None else {"ws": str(Path(self.ws).resolve())}

    def load(self, gcfg) -> DragJob:
        """The `drag.DragJob` of this job for a generator config: its latent file and mask PNG read and checked."""
        w0 = None if self.ws is None else read_latent(self.ws, gcfg.num_ws, gcfg.w_dim)
        mask = None if self.mask is None else load_mask(self.mask, gcfg.img_resolution)
        return DragJob(points=tuple(self.points), targets=tuple(self.targets), seed=self.seed, trunc=self.trunc,
                       w0=w0, mask=mask, space=self.space, steps=self.steps, lr=self.lr,
                       lambda_mask=self.lambda_mask)


def _number(value, what: str, *, integer=False, minimum=None, open_minimum=False):
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if not ok or isinstance(value, bool) or (not integer and not math.isfinite(value)):
        raise ValueError(f"{what} must be {'an integer' if integer else 'a number'}, got {json.dumps(value)}")
    if minimum is not None and (value <= minimum if open_minimum else value < minimum):
        raise ValueError(f"{what} must be {'>' if open_minimum else '>='} {minimum}, got {value}")
    return value


def _pairs(value, what: str) -> list:
    if (not isinstance(value, list) or not value
            or not all(isinstance(p, list) and len(p) == 2 for p in value)):
        raise ValueError(f"{what} must be a non-empty list of [row, col] pairs, got {json.dumps(value)}")
    for pair in value:
        for v in pair:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not float(v).is_integer():
                raise ValueError(f"{what} must hold integer pixel positions, got {json.dumps(pair)}")
    return [(int(y), int(x)) for y, x in value]


def _job(index: int, entry, folder: Path, defaults: dict) -> Job:
    if not isinstance(entry, dict):
        raise ValueError(f"job #{index} is not a JSON object")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"job #{index}: 'name' must be a folder name of letters, digits, '.', '_' and '-' "
                         f"(not starting with '.' or '-'), got {json.dumps(name)}")
    try:
        unknown = sorted(set(entry) - JOB_FIELDS)
        if unknown:
            raise ValueError(f"unknown fields {unknown}; a job may have {sorted(JOB_FIELDS)}")
        for key in ("points", "targets"):
            if key not in entry:
                raise ValueError(f"'{key}' is missing")
        if ("seed" in entry) == ("ws" in entry):
            raise ValueError("give exactly one of 'seed' and 'ws'")
        if "ws" in entry and "trunc" in entry:
            raise ValueError("'trunc' applies to 'seed', not to 'ws'")
        fields = {**defaults, **{k: v for k, v in entry.items() if k != "name"}}
        for key in ("ws", "mask"):
            if key in entry:
                if not isinstance(entry[key], str):
                    raise ValueError(f"'{key}' must be a file path, got {json.dumps(entry[key])}")
                path = folder / entry[key]
                if not path.is_file():
                    raise ValueError(f"'{key}' file {path} does not exist")
                fields[key] = path
        if "seed" in entry:
            _number(entry["seed"], "'seed'", integer=True, minimum=0)
            if entry["seed"] >= 2 ** 32:
                raise ValueError("'seed' must be below 2**32")
        if fields["space"] not in ("w", "w+"):
            raise ValueError(f"'space' must be \"w\" or \"w+\", got {json.dumps(fields['space'])}")
        if not isinstance(fields["trace"], bool):
            raise ValueError(f"'trace' must be true or false, got {json.dumps(fields['trace'])}")
        _number(fields["trunc"], "'trunc'")
        _number(fields["steps"], "'steps'", integer=True, minimum=0)
        _number(fields["lr"], "'lr'", minimum=0, open_minimum=True)
        _number(fields["lambda_mask"], "'lambda_mask'", minimum=0)
        fields["points"] = _pairs(entry["points"], "'points'")
        fields["targets"] = _pairs(entry["targets"], "'targets'")
        if len(fields["points"]) != len(fields["targets"]):
            raise ValueError(f"{len(fields['points'])} points but {len(fields['targets'])} targets: "
                             "give one target per point")
    except ValueError as e:
        raise ValueError(f"job {name!r}: {e}") from None
    return Job(name=name, **{k: v for k, v in fields.items() if k in JOB_FIELDS})


def read_jobs(path, defaults: dict | None = None) -> list[Job]:
    """Read and check a job file (everything that does not need the generator: fields, types, files, counts).

    Schema: `{"jobs": [JOB, ...]}`, each JOB an object with
      name         folder name of its outputs (unique; letters, digits, '.', '_', '-')      required
      seed | ws    start: a seed (w0 = mapping(RandomState(seed).randn(1, z_dim)), truncated by `trunc`) or a
                   latent .npy (shapes as `jaxgan.latents`); exactly one                 required
      points       [[row, col], ...] handle pixels                                          required
      targets      [[row, col], ...] one per point                                          required
      trunc        truncation psi for `seed`                                                default 0.7
      mask         PNG, white = may move; relative paths (and `ws`) resolve against the JSON's folder
      space        "w+" or "w"                                                              default "w+"
      steps        cap on optimisation steps                                                default 200
      lr           Adam step size                                                           default 0.001
      lambda_mask  weight of the mask term                                                  default 20
      trace        also write drag_trace.npz                                                default false
    `defaults` overrides the defaults (the command line's --trunc, --space, --steps, --lr, --lambda-mask).
    """
    path = Path(path)
    try:
        spec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read the job file {path}: {e}") from None
    if not isinstance(spec, dict) or set(spec) != {"jobs"} or not isinstance(spec["jobs"], list) or not spec["jobs"]:
        raise ValueError(f"{path}: expected an object {{\"jobs\": [...]}} with a non-empty list of jobs")
    defaults = {**DEFAULTS, "trace": False, **(defaults or {})}
    jobs = [_job(i, entry, path.parent, defaults) for i, entry in enumerate(spec["jobs"])]
    seen = set()
    for job in jobs:
        if job.name.lower() in seen:
            raise ValueError(f"job {job.name!r}: the name is used twice (names must differ, ignoring case)")
        seen.add(job.name.lower())
    return jobs


# ----------------------------------------------------------------------------------------------------------------
# Outputs


@dataclasses.dataclass
class DragResult:
    """One finished session, trimmed to its real points: `trace` holds `points` [S, n, 2], `losses` [S, n + 2],
    `ws` [S, num_ws, w_dim], `stop`, `updated` [S] and `images` [S, H, W, C]; row S-1 is the closing observation."""

    job: Job
    trace: dict
    targets: np.ndarray   # [n, 2]
    final_ws: np.ndarray  # [num_ws, w_dim] float32
    reached: bool
    steps_done: int
    mask_used: bool

    @classmethod
    def of(cls, job: Job, outcome: DragOutcome) -> "DragResult":
        return cls(job=job, **{f.name: getattr(outcome, f.name) for f in dataclasses.fields(outcome)})


def annotate(image: np.ndarray, points, targets, label: str | None = None) -> np.ndarray:
    """The image with a line from each handle to its target, handles in red, targets in blue, and `label` in the
    top-left corner. image: [H, W, C] uint8; points and targets (row, col)."""
    from PIL import Image, ImageDraw
    canvas = Image.fromarray(np.ascontiguousarray(rgb(image)), "RGB")
    draw = ImageDraw.Draw(canvas)
    size = canvas.size[0]
    radius = max(3, round(size / 96))
    width = max(1, round(size / 256))
    for (py, px), (ty, tx) in zip(points, targets):
        draw.line([(float(px), float(py)), (float(tx), float(ty))], fill=LINE_COLOR, width=width)
    for (y, x), color in [(t, TARGET_COLOR) for t in targets] + [(p, HANDLE_COLOR) for p in points]:
        draw.ellipse([float(x) - radius, float(y) - radius, float(x) + radius, float(y) + radius], fill=color,
                     outline=(255, 255, 255))
    if label:
        font = default_font(max(10, size // 24))
        left, top, right, bottom = draw.textbbox((3, 2), label, font=font)
        draw.rectangle([left - 2, top - 1, right + 2, bottom + 1], fill=(0, 0, 0))
        draw.text((3, 2), label, fill=(255, 255, 255), font=font)
    return np.asarray(canvas)


def gif_writer(images, points, targets) -> Callable:
    """`write(file)` for the animated GIF of a drag: one frame per observation, labelled 'k/S-1', looping, 50 ms a
    frame and 1 s on the last. The label also keeps frames distinct, so Pillow merges none of them away. Frames
    are at most GIF_MAX_SIZE px (larger images are downscaled for the animation only) and at least GIF_MIN_SIZE px
    (smaller ones are enlarged by a whole factor, each pixel a block, markers at the block centres); they are drawn
    one at a time while the file is written."""
    from PIL import Image
    last = len(images) - 1
    size = images.shape[1]
    enlarge = max(1, -(-GIF_MIN_SIZE // size))
    scale = min(1.0, GIF_MAX_SIZE / size)
    side = round(size * scale) if enlarge == 1 else size * enlarge

    def place(p):
        """Pixel (row, col) of the image -> position in the frame."""
        p = np.asarray(p, np.float64)
        return p * scale if enlarge == 1 else (p + 0.5) * enlarge - 0.5

    def frame(k):
        image = images[k]
        if side != size:
            resample = Image.Resampling.LANCZOS if enlarge == 1 else Image.Resampling.NEAREST
            image = np.asarray(Image.fromarray(np.ascontiguousarray(rgb(image)), "RGB").resize(
                (side, side), resample))
        return Image.fromarray(annotate(image, place(points[k]), place(targets), f"{k}/{last}"), "RGB")

    def write(f):
        durations = [FRAME_MS] * last + [LAST_FRAME_MS]
        frame(0).save(f, format="GIF", save_all=True, append_images=(frame(k) for k in range(1, last + 1)),
                      duration=durations, loop=0)
    return write


def trace_arrays(result: DragResult) -> dict[str, np.ndarray]:
    """What --trace saves; the last row of each per-step array is the closing observation."""
    t = result.trace
    return {"points": t["points"], "targets": result.targets.astype(np.int32), "losses": t["losses"],
            "ws": t["ws"], "stop": t["stop"].astype(bool), "updated": t["updated"].astype(bool)}


def summary(result: DragResult, *, checkpoint, settings: dict, outputs: dict) -> dict:
    """The JSON summary: start, points, targets, final points and distances, steps, stop reason, settings."""
    job, final = result.job, result.trace["points"][-1]
    distances = np.sqrt(np.sum((result.targets - final).astype(np.float64) ** 2, axis=-1))
    return {
        **({"name": job.name} if job.name else {}),
        "checkpoint": str(Path(checkpoint).resolve()),
        "start": job.start(),
        "points": [list(map(int, p)) for p in job.points],
        "targets": [list(map(int, p)) for p in result.targets],
        "final_points": [list(map(int, p)) for p in final],
        "distances": [round(float(d), 4) for d in distances],
        "stop_reason": "reached targets" if result.reached else "step limit",
        "steps": result.steps_done,
        "observations": int(len(result.trace["points"])),
        "settings": {"space": job.space, "max_steps": job.steps, "lr": job.lr, "lambda_mask": job.lambda_mask,
                     "mask": str(Path(job.mask).resolve()) if job.mask else None, "mask_used": result.mask_used, **settings},
        "outputs": outputs,
    }


def output_files(result: DragResult, *, checkpoint, settings: dict, trace_file: str | None = None
                 ) -> dict[str, Callable[[Any], None]]:
    """{file name: write(file)} for one session's outputs, in writing order: drag.png (the final image, unmarked),
    drag.gif, drag_ws.npy (the final latent [num_ws, w_dim] float32), drag_trace.npz when `result.job.trace`,
    then drag.json. `trace_file`: where a trace written elsewhere (the command's --trace) went, for the summary."""
    t = result.trace
    files = {IMAGE_NAME: png_writer(t["images"][-1]), GIF_NAME: gif_writer(t["images"], t["points"], result.targets),
             LATENT_NAME: lambda f: np.save(f, result.final_ws.astype(np.float32))}
    outputs = {"image": IMAGE_NAME, "gif": GIF_NAME, "latent": LATENT_NAME}
    if result.job.trace:
        files[TRACE_NAME] = lambda f: np.savez(f, **trace_arrays(result))
        outputs["trace"] = TRACE_NAME
    elif trace_file is not None:
        outputs["trace"] = str(Path(trace_file).resolve())
    doc = summary(result, checkpoint=checkpoint, settings=settings, outputs=outputs)
    files[SUMMARY_NAME] = json_writer(doc)
    return files


def result_line(result: DragResult) -> str:
    """The line `jaxgan drag` prints for a finished session: why it stopped, where the handles are."""
    final = result.trace["points"][-1]
    distance = float(np.sqrt(np.sum((result.targets - final) ** 2, axis=-1)).max())
    return (f"{result.job.name + ': ' if result.job.name else ''}"
            f"{'reached targets' if result.reached else 'step limit'} after {result.steps_done} steps, "
            f"handles at {';'.join(f'{y},{x}' for y, x in final)} (farthest {distance:.1f} px from its target)")
