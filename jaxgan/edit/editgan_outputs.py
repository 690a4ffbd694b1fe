"""The file side of `jaxgan editgan`: reading its inputs (class-id maps, edit regions, edit vectors, class names,
--class-ids lists) and preparing its outputs (class-id PNGs, colour-coded segmentations, figures, edit vectors).

Pure host code (numpy, Pillow, json): no JAX here. Readers raise `jaxgan.images.ImageError` (images) or
`ValueError` (everything else) with one-line messages that name the file. Nothing here writes a file of the
command's own: `write_label_png` and `edit_vector_writer` return `write(file)` callables that the CLI calls on
files it writes atomically. Images are uint8 [H, W, C] with C = 1 or 3; label maps are int [H, W] class ids
(as EditGAN's `Tool.run_optimization_editGAN` / `run_optimization_post_process` use them,
nv-tlabs/editGAN_release@fef9ab8).

Files
-----
Class-id map (the edit's target segmentation, a segmentation the command writes): a single-channel PNG whose
pixel values are class ids 0 ... num_classes-1 (0 = background): 8-bit grey ('L'), a palette image ('P', whose
palette INDICES are the ids; its colours are ignored) or 16-bit grey ('I;16' / 'I'). RGB images are refused: a
colour picture of a segmentation is not decoded back to ids. The command writes 8-bit grey ('L') PNGs.

Edit region (the pixels the user brushed, the official tool's ROI): any image of the generator's size; the
region is its non-zero pixels. Grey ('1', 'L', 'I;16', 'I', 'F') counts the grey value, grey + alpha ('LA') the
grey value; colour images (RGB, RGBA, palette, CMYK, ...) count a pixel when any of its R, G, B is non-zero. Alpha
is ignored, so a transparent pixel stored as white is in the region. (The official front end takes the opposite
convention, black strokes on white; here the region is the bright part.) An empty region is refused.

Class names: a text file with one name per line, line i naming class i (trailing blank lines are ignored), or a
JSON list of strings (a file ending in .json, or whose text starts with '['). There must be one name per class.

Edit vector (.npz, written by `save_edit_vector`, read by `load_edit_vector`; np.savez, no pickled objects):
  vector     float32 [num_ws, w_dim]   the W+ offset delta: an edit applied at scale s gives w + s * delta (s = 1
                                       reproduces the optimised edit: delta = w_edited - w_original). The
                                       official tool's slider value is 2 s (its run_app.py uses w + slider/2 *
                                       delta).
  class_ids  int32 [k]                 the classes the edit changes, in increasing order, no repeats; refinement
                                       after applying the vector re-optimises the pixels of these classes (in the
                                       segmentation before or after the vector, dilated). May be empty (k = 0) when
                                       unknown; the command then needs --class-ids.
  meta       0-d unicode string        a JSON object (json.loads(str(npz["meta"]))) describing the vector. Always
                                       written: "format" ("jaxgan-editgan-vector"), "version" (1), "num_ws" and
                                       "w_dim" (the vector's shape), "scale_convention" ("w + s * vector"). The
                                       caller adds what it knows, e.g. "resolution" of the generator,
                                       "num_classes" of the segmenter, "steps" and "lr" of the edit
                                       optimisation, "class_names" of class_ids, "checkpoint". Every key is
                                       optional when reading; "resolution" is quoted when the shape mismatches.
  Reading also accepts an .npz without "meta" (meta = {}) and a (1, num_ws, w_dim) "vector", so the official
  pickle cache converts with one line (if you trust the pickle): `d = pickle.load(open(p, "rb"));
  np.savez("edit.npz", vector=d["edit_vector"], class_ids=d["roi_ids"])`.
  Also read: the official pre-learned vectors (static/editing_vectors/*.npy), a bare .npy of shape
  (1, num_ws, w_dim) or (num_ws, w_dim) with no class ids (class_ids = [], meta = {}). Pickles
  (current_editing_latent_cache.pickle) are refused: loading one can run arbitrary code.

Figures: `segmentation_figure` (image | colour-coded segmentation | legend) and `before_after_figure` (a 2x2 grid
titled "before" / "after": images on top, segmentations below with the edit region outlined, and a legend of the
classes in either). Colours come from `palette`, the PASCAL VOC colour map (class 0 black; 256 distinct colours).
"""

import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from jaxgan.files import json_writer
from jaxgan.images import ImageError, default_font, open_image, png_writer, rgb
from jaxgan.palette import voc_palette

EDIT_VECTOR_FORMAT, EDIT_VECTOR_VERSION = "jaxgan-editgan-vector", 1
SCALE_CONVENTION = "w + s * vector"
MAX_CLASSES = 256  # palette size; written class-id PNGs are 8-bit

BACKGROUND = (255, 255, 255)  # figure background
TEXT_COLOR = (0, 0, 0)
SWATCH_OUTLINE = (200, 200, 200)  # not a palette colour (palette values are multiples of 32 up to 224)
REGION_COLOR = (255, 255, 255)    # the edit-region outline: not a palette colour either
GAP = 4                           # px between the panels of a figure
_PICKLE_SUFFIXES = (".pickle", ".pkl", ".pck", ".p")
_NPY_MAGIC, _ZIP_MAGIC = b"\x93NUMPY", b"PK"


def _shape2(size) -> tuple[int, int]:
    """size (int: square, or (height, width)) -> (height, width)."""
    if isinstance(size, (int, np.integer)):
        return int(size), int(size)
    height, width = size
    return int(height), int(width)


def _check_size(image, path, size) -> None:
    height, width = _shape2(size)
    if image.size != (width, height):
        raise ImageError(f"{path} is {image.size[0]}x{image.size[1]} pixels (width x height), but {width}x{height} "
                         "is expected (the generator's image size)")


# ----------------------------------------------------------------------------------------------------------------
# Inputs


def read_label_png(path, num_classes: int, size) -> np.ndarray:
    """A class-id map -> int32 [H, W] with ids in 0 ... num_classes-1. size: int (square) or (height, width).
    Takes 8-bit grey, palette (the indices are the ids) and 16-bit grey images; refuses colour images, a wrong
    size and ids outside the range."""
    return labels_of(open_image(path), num_classes, size, path)


def labels_of(image, num_classes: int, size, path="the class-id map") -> np.ndarray:
    """`read_label_png` for an image already opened (a PIL image); `path` names it in errors."""
    mode = image.mode
    if mode in ("L", "P", "1") or mode.startswith("I"):
        ids = np.asarray(image).astype(np.int64)
    elif mode in ("LA", "La", "PA"):
        raise ImageError(f"{path} has an alpha channel ({mode}); a class-id map must be single-channel (8-bit grey "
                         "or palette indices) with no alpha")
    elif mode == "F":
        raise ImageError(f"{path} is a floating-point image; a class-id map must hold integer class ids (8-bit "
                         "grey or palette indices)")
    else:
        kind = {"RGB": "an RGB", "RGBA": "an RGBA", "RGBa": "an RGBA", "RGBX": "an RGB", "CMYK": "a CMYK",
                "YCbCr": "a YCbCr", "LAB": "a LAB", "HSV": "an HSV"}.get(mode, f"a {mode}")
        raise ImageError(f"{path} is {kind} image; a class-id map must be single-channel (8-bit grey or palette "
                         "indices), not a colour picture of a segmentation")
    _check_size(image, path, size)
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ImageError(f"{path} holds class id {bad} ({'smallest' if low < 0 else 'largest'} id found), but ids "
                         f"must be in 0..{num_classes - 1} ({num_classes} classes)")
    return ids.astype(np.int32)


def read_region_png(path, size) -> np.ndarray:
    """An edit-region mask -> bool [H, W], True where the image is non-zero (colour: any of R, G, B non-zero;
    alpha ignored). size: int (square) or (height, width). Refuses a wrong size and an empty region."""
    return region_of(open_image(path), size, path)


def region_of(image, size, path="the region") -> np.ndarray:
    """`read_region_png` for an image already opened (a PIL image); `path` names it in errors."""
    _check_size(image, path, size)
    mode = image.mode
    if mode in ("1", "L", "F") or mode.startswith("I"):
        region = np.asarray(image) != 0
    elif mode in ("LA", "La"):
        region = np.asarray(image)[..., 0] != 0
    else:  # RGB(A), palette (its colours, not its indices), CMYK, ...
        pixels = np.asarray(image.convert("RGBA" if "A" in image.getbands() or mode in ("P", "PA") else "RGB"))
        region = np.any(pixels[..., :3] != 0, axis=-1)
    if not region.any():
        raise ImageError(f"{path} marks no pixels; the region must contain at least one non-zero pixel")
    return region


def read_class_names(path, num_classes: int) -> list[str]:
    """Class names: a text file with one name per line (line i = class i), or a JSON list of strings."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read the class names {path}: {e}") from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not valid JSON ({e})") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: expected a JSON list of strings, one name per class")
        names = [n.strip() for n in names]
        blank = [i for i, n in enumerate(names) if not n]
        if blank:
            raise ValueError(f"{path}: the name of class {blank[0]} is empty; give every class a name")
    else:
        names = [line.strip() for line in text.splitlines()]
        while names and not names[-1]:
            names.pop()
        blank = [i for i, n in enumerate(names) if not n]
        if blank:
            raise ValueError(f"{path}: line {blank[0] + 1} (class {blank[0]}) is empty; give every class a name, "
                             "line i naming class i")
    if len(names) != num_classes:
        raise ValueError(f"{path} names {len(names)} classes, but the segmenter has {num_classes}; give one name per "
                         "class, the i-th naming class i (0 = background)")
    return names


_ID_TOKEN = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")


def class_ids_arg(text: str, num_classes: int, names: Sequence[str] | None = None,
                  option: str = "--class-ids") -> list[int]:
    """'3,5,7', '3-5' or a mix ('1,3-5') -> the sorted ids without repeats, each in 0 ... num_classes-1. With
    `names` (one per class), a token may also be a class name (ignoring case)."""
    tokens = [t.strip() for t in str(text).split(",")]
    if not any(tokens):
        raise ValueError(f"{option} {text!r} is empty; give class ids like '3,5,7' or '3-5'")
    lookup = {}
    if names is not None:
        for i, name in enumerate(names):
            lookup.setdefault(name.lower(), []).append(i)
    ids = set()
    for token in tokens:
        if not token:
            continue
        match = _ID_TOKEN.fullmatch(token)
        if match:
            first = int(match.group(1))
            last = int(match.group(2)) if match.group(2) is not None else first
            if last < first:
                raise ValueError(f"{option}: the range {token!r} runs backwards; write it as {last}-{first}")
            for i in (first, last):
                if i >= num_classes:
                    raise ValueError(f"{option}: class id {i} is out of range; the segmenter has {num_classes} "
                                     f"classes (ids 0-{num_classes - 1})")
            ids.update(range(first, last + 1))
        elif token.lower() in lookup:
            found = lookup[token.lower()]
            if len(found) > 1:
                raise ValueError(f"{option}: the class name {token!r} is shared by classes {found}; give the id")
            ids.add(found[0])
        else:
            hint = " or class names" if names is not None else ""
            raise ValueError(f"{option} {text!r}: {token!r} is not a class id or a range like '3-5'{hint}; give "
                             "class ids like '3,5,7' or '3-5'")
    return sorted(ids)


# ----------------------------------------------------------------------------------------------------------------
# Edit vectors


def _vector_shape_error(path, shape, num_ws, w_dim, meta) -> ValueError:
    made = ""
    if isinstance(meta, dict) and meta.get("resolution") is not None:
        made = f" (it was made for a {meta['resolution']} px generator)"
    return ValueError(f"{path}: the edit vector has shape {tuple(shape)}{made}, but this generator needs "
                      f"({num_ws}, {w_dim}) or (1, {num_ws}, {w_dim}) (num_ws, w_dim)")


def _check_vector(path, vector, num_ws, w_dim, meta) -> np.ndarray:
    if not (np.issubdtype(vector.dtype, np.floating) or np.issubdtype(vector.dtype, np.integer)):
        raise ValueError(f"{path}: the edit vector has dtype {vector.dtype}; it must hold floats")
    shape = vector.shape
    if vector.ndim == 3 and shape[0] == 1:
        vector = vector[0]
    if vector.shape != (num_ws, w_dim):
        raise _vector_shape_error(path, shape, num_ws, w_dim, meta)
    vector = vector.astype(np.float32)
    if not np.all(np.isfinite(vector)):
        raise ValueError(f"{path}: the edit vector holds {int(np.sum(~np.isfinite(vector)))} NaN or infinite "
                         "values")
    return vector


def _pickle_error(path) -> ValueError:
    return ValueError(
        f"{path} is a Python pickle (like the official tool's current_editing_latent_cache.pickle); pickles are not "
        "loaded because loading one can run arbitrary code. If you trust it, convert it with numpy: "
        "d = pickle.load(open(PATH, 'rb')); np.savez('edit.npz', vector=d['edit_vector'], class_ids=d['roi_ids'])")


def load_edit_vector(path, num_ws: int, w_dim: int, num_classes: int | None = None
                     ) -> tuple[np.ndarray, list[int], dict]:
    """An edit vector file -> (vector float32 [num_ws, w_dim], class_ids, meta). Reads the .npz this module
    writes (schema in the module docstring) and the official pre-learned .npy vectors (class_ids [] and meta {}:
    the caller asks for --class-ids). Refuses pickles. With num_classes, class ids are range-checked."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except OSError as e:
        raise ValueError(f"cannot read the edit vector {path}: {e}") from None
    if path.suffix.lower() in _PICKLE_SUFFIXES or head[:1] == b"\x80":
        raise _pickle_error(path)
    if not (head.startswith(_NPY_MAGIC) or head.startswith(_ZIP_MAGIC)):
        raise ValueError(f"{path} is not an .npz or .npy file (an edit vector is an .npz with 'vector', "
                         "'class_ids' and 'meta', or an official (1, num_ws, w_dim) .npy)")
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e):
            raise _pickle_error(path) from None
        raise ValueError(f"cannot read the edit vector {path}: {e}") from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"cannot read the edit vector {path}: {e}") from None
    if isinstance(data, np.ndarray):  # .npy: an official pre-learned vector
        return _check_vector(path, data, num_ws, w_dim, {}), [], {}
    with data:
        missing = [k for k in ("vector", "class_ids") if k not in data.files]
        if missing:
            raise ValueError(f"{path}: the edit-vector .npz lacks {' and '.join(repr(k) for k in missing)} (it has "
                             f"{sorted(data.files)}; expected 'vector', 'class_ids' and 'meta')")
        try:
            arrays = {k: data[k] for k in ("vector", "class_ids", "meta") if k in data.files}
        except ValueError as e:
            if "pickle" in str(e):
                raise _pickle_error(path) from None
            raise ValueError(f"cannot read the edit vector {path}: {e}") from None
    meta = {}
    if "meta" in arrays:
        raw = arrays["meta"]
        try:
            if raw.ndim != 0 or raw.dtype.kind not in "US":
                raise ValueError("not a string")
            meta = json.loads(str(raw[()] if raw.dtype.kind == "U" else raw[()].decode()))
            if not isinstance(meta, dict):
                raise ValueError("not a JSON object")
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: 'meta' must be a JSON object stored as a string ({e})") from None
    vector = _check_vector(path, arrays["vector"], num_ws, w_dim, meta)
    ids = arrays["class_ids"]
    if ids.ndim > 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(f"{path}: 'class_ids' must be a list of integers, got shape {ids.shape} dtype {ids.dtype}")
    ids = sorted({int(i) for i in ids.reshape(-1)})
    if ids and ids[0] < 0:
        raise ValueError(f"{path}: 'class_ids' holds the negative id {ids[0]}")
    if num_classes is not None and ids and ids[-1] >= num_classes:
        raise ValueError(f"{path}: 'class_ids' holds class id {ids[-1]}, but the segmenter has {num_classes} classes "
                         f"(ids 0-{num_classes - 1})")
    return vector, ids, meta


def edit_vector_writer(vector: np.ndarray, class_ids: Sequence[int], meta: dict | None = None
                       ) -> Callable[[Any], None]:
    """`write(file)` that saves an edit vector .npz (schema in the module docstring). Checks everything first:
    vector float [num_ws, w_dim], finite; class ids non-negative integers; meta a JSON-serialisable dict. "format",
    "version", "num_ws", "w_dim" and "scale_convention" are filled in (the caller's values win for the others)."""
    vector = np.asarray(vector)
    if vector.ndim != 2 or not np.issubdtype(vector.dtype, np.floating):
        raise ValueError(f"an edit vector must be floats of shape (num_ws, w_dim), got {vector.shape} {vector.dtype}")
    if not np.all(np.isfinite(vector)):
        raise ValueError("the edit vector holds NaN or infinite values")
    class_ids = list(class_ids)
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in class_ids):
        raise ValueError(f"class ids must be non-negative integers, got {class_ids}")
    ids = sorted({int(i) for i in class_ids})
    doc = {"format": EDIT_VECTOR_FORMAT, "version": EDIT_VECTOR_VERSION, "num_ws": int(vector.shape[0]),
           "w_dim": int(vector.shape[1]), "scale_convention": SCALE_CONVENTION, **(meta or {})}
    try:
        text = json.dumps(doc, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"the edit vector's meta must be JSON-serialisable: {e}") from None
    arrays = {"vector": np.ascontiguousarray(vector, np.float32), "class_ids": np.asarray(ids, np.int32).reshape(-1),
              "meta": np.array(text)}
    return lambda f: np.savez(f, **arrays)


def save_edit_vector(file, vector: np.ndarray, class_ids: Sequence[int], meta: dict | None = None) -> None:
    """Save an edit vector .npz to `file` (a path, used as given: no '.npz' is appended, or a binary file)."""
    write = edit_vector_writer(vector, class_ids, meta)
    if hasattr(file, "write"):
        write(file)
    else:
        with open(file, "wb") as f:
            write(f)


# ----------------------------------------------------------------------------------------------------------------
# Label maps and colours


def write_label_png(labels: np.ndarray) -> Callable[[Any], None]:
    """`write(file)` that saves int [H, W] class ids (0 ... 255) as an 8-bit grey PNG (the caller makes it atomic)."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"a class-id map must be integers of shape (H, W), got {labels.shape} {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        bad = int(labels.max()) if labels.max() > 255 else int(labels.min())
        raise ValueError(f"class id {bad} does not fit an 8-bit class-id PNG (ids 0-255)")
    pixels = np.ascontiguousarray(labels.astype(np.uint8))
    from PIL import Image
    return lambda f: Image.fromarray(pixels, "L").save(f, format="PNG")


def palette(num_classes: int) -> np.ndarray:
    """uint8 [num_classes, 3]: the PASCAL VOC colour map (class 0 black, 1 (128, 0, 0), 2 (0, 128, 0),
    3 (128, 128, 0), 4 (0, 0, 128), ...; bit j of the id sets bit 7 - j // 3 of R, G or B by j % 3), so all 256
    colours differ. Its values are multiples of 32 up to 224, so pure white never occurs."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise ValueError(f"the palette has 1 to {MAX_CLASSES} classes, not {num_classes}")
    return voc_palette(num_classes)


def colorize(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """int [H, W] class ids -> uint8 [H, W, 3] palette colours."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"class ids must be in 0..{num_classes - 1}, found {int(labels.min())}..{int(labels.max())}")
    return palette(num_classes)[labels]


def _names(names, num_classes):
    if names is not None and len(names) != num_classes:
        raise ValueError(f"{len(names)} class names for {num_classes} classes")
    return names


def legend(class_ids: Sequence[int], num_classes: int, names: Sequence[str] | None = None,
           height: int | None = None, font_size: int = 12) -> np.ndarray:
    """uint8 [H, W, 3]: per class, top to bottom in the order given, on white: a swatch (a square of the class's
    palette colour, outlined in light grey), the class id (right-aligned) and, with `names`, its name. With
    `height`, the legend is that tall (or one row, if taller) and wraps into more columns when the classes do not
    fit in one."""
    from PIL import Image, ImageDraw
    names = _names(names, num_classes)
    colors = palette(num_classes)
    ids = [int(i) for i in class_ids]
    for i in ids:
        if not 0 <= i < num_classes:
            raise ValueError(f"class id {i} is not in 0..{num_classes - 1}")
    font = default_font(font_size)
    pad, swatch, row = 4, font_size + 2, font_size + 6
    labels = [str(i) for i in ids] or ["no classes"]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    id_width = max(math.ceil(measure.textlength(t, font=font)) for t in labels)
    text_width = id_width
    if names is not None and ids:
        text_width += 6 + max(math.ceil(measure.textlength(names[i], font=font)) for i in ids)
    per_column = len(labels) if height is None else max(1, (height - 2 * pad) // row)
    columns = -(-len(labels) // per_column)
    column_width = swatch + 6 + text_width + 2 * pad
    total_height = max(height or 0, 2 * pad + min(per_column, len(labels)) * row)
    canvas = Image.new("RGB", (pad + columns * column_width, total_height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for k, text in enumerate(labels):
        x = pad + (k // per_column) * column_width
        y = pad + (k % per_column) * row + (row - swatch) // 2
        if not ids:
            draw.text((x, y + swatch / 2), text, fill=TEXT_COLOR, font=font, anchor="lm")
            continue
        draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=tuple(int(c) for c in colors[ids[k]]),
                       outline=SWATCH_OUTLINE)
        draw.text((x + swatch + 6 + id_width, y + swatch / 2), text, fill=TEXT_COLOR, font=font, anchor="rm")
        if names is not None:
            draw.text((x + swatch + 12 + id_width, y + swatch / 2), names[ids[k]], fill=TEXT_COLOR, font=font,
                      anchor="lm")
    return np.asarray(canvas)


def region_outline(region: np.ndarray, width: int = 1) -> np.ndarray:
    """bool [H, W]: the pixels of `region` within `width` px (8-neighbourhood) of a pixel outside it or of the
    image border."""
    inner = np.asarray(region, bool)
    for _ in range(max(1, width)):
        padded = np.pad(inner, 1, constant_values=False)
        eroded = np.ones_like(inner)
        h, w = inner.shape
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                eroded &= padded[dy:dy + h, dx:dx + w]
        inner = eroded
    return np.asarray(region, bool) & ~inner


def _pad_to(panel: np.ndarray, height: int) -> np.ndarray:
    if panel.shape[0] >= height:
        return panel
    return np.concatenate([panel, np.full((height - panel.shape[0],) + panel.shape[1:], 255, np.uint8)], axis=0)


def _hgap(height: int) -> np.ndarray:
    return np.full((height, GAP, 3), 255, np.uint8)


def _font_size(height: int) -> int:
    return max(11, min(20, height // 40))


def segmentation_figure(image: np.ndarray, labels: np.ndarray, num_classes: int,
                        names: Sequence[str] | None = None) -> np.ndarray:
    """uint8 [H', W', 3]: the image (columns 0 ... W-1), its colour-coded segmentation (columns W+GAP ...
    2W+GAP-1) and a legend of the classes present, side by side on white, all from row 0."""
    image, labels = np.asarray(image), np.asarray(labels)
    if image.shape[:2] != labels.shape:
        raise ValueError(f"the image {image.shape} and its labels {labels.shape} differ in size")
    height = image.shape[0]
    key = legend(np.unique(labels), num_classes, names, height=height, font_size=_font_size(height))
    height = max(height, key.shape[0])
    panels = [rgb(image), _hgap(image.shape[0]), colorize(labels, num_classes), _hgap(image.shape[0])]
    return np.concatenate([_pad_to(p, height) for p in panels] + [_pad_to(key, height)], axis=1)


def before_after_figure(before_image: np.ndarray, before_labels: np.ndarray, after_image: np.ndarray,
                        after_labels: np.ndarray, num_classes: int, region: np.ndarray | None = None,
                        names: Sequence[str] | None = None) -> np.ndarray:
    """uint8 [H', W', 3]: a 2x2 grid under the titles "before" and "after" (images on the top row, their
    colour-coded segmentations below, GAP px apart; `title_height(H)` px of titles above), the edit `region`
    (bool [H, W]) outlined in white on both segmentations, and to the right a legend of the classes present in
    either segmentation."""
    from PIL import Image, ImageDraw
    shapes = [np.shape(before_image)[:2], np.shape(before_labels), np.shape(after_image)[:2], np.shape(after_labels)]
    if region is not None:
        shapes.append(np.shape(region))
    if len(set(shapes)) != 1:
        raise ValueError(f"the images, label maps and region differ in size: {shapes}")
    h, w = shapes[0]
    segs = [colorize(before_labels, num_classes), colorize(after_labels, num_classes)]
    if region is not None:
        edge = region_outline(region, width=max(1, round(h / 256)))
        for seg in segs:
            seg[edge] = REGION_COLOR
    top = title_height(h)
    grid = np.full((top + 2 * h + GAP, 2 * w + GAP, 3), 255, np.uint8)
    for col, (image, seg) in enumerate(zip((before_image, after_image), segs)):
        x = col * (w + GAP)
        grid[top:top + h, x:x + w] = rgb(np.asarray(image))
        grid[top + h + GAP:top + 2 * h + GAP, x:x + w] = seg
    canvas = Image.fromarray(grid, "RGB")
    draw = ImageDraw.Draw(canvas)
    font = default_font(_font_size(h) + 2)
    for col, title in enumerate(("before", "after")):
        draw.text((col * (w + GAP) + w / 2, top / 2), title, fill=TEXT_COLOR, font=font, anchor="mm")
    present = np.union1d(np.unique(before_labels), np.unique(after_labels))
    key = legend(present, num_classes, names, height=2 * h + GAP, font_size=_font_size(h))
    height = max(grid.shape[0], top + key.shape[0])
    key = np.concatenate([np.full((top,) + key.shape[1:], 255, np.uint8), key], axis=0)
    return np.concatenate([_pad_to(np.asarray(canvas), height), _hgap(height), _pad_to(key, height)], axis=1)


def title_height(image_height: int) -> int:
    """Height of the title band of `before_after_figure` for images `image_height` px tall."""
    return _font_size(image_height) + 12


# ----------------------------------------------------------------------------------------------------------------
# The files of `jaxgan editgan seg | edit | apply | train-seg`


def read_annotated_pairs(latents_dir: Path, masks_dir: Path, num_classes: int, resolution: int, num_ws: int,
                         w_dim: int):
    """(names, ws [N, num_ws, w_dim], masks [N, res, res]) of the NAME.npy / NAME.png pairs of two folders; each
    latent file holds one W+ latent (read by `jaxgan.latents.read_latent`)."""
    from jaxgan.latents import read_latent
    latents = {p.stem: p for p in sorted(Path(latents_dir).glob("*.npy"))}
    masks = {p.stem: p for p in sorted(Path(masks_dir).glob("*.png"))}
    if not latents:
        raise ValueError(f"{latents_dir} holds no .npy latents")
    unmatched = sorted(set(latents) ^ set(masks))
    if unmatched:
        raise ValueError(f"latents and masks are paired by file name (NAME.npy with NAME.png); unpaired: "
                         f"{', '.join(unmatched[:5])}{' ...' if len(unmatched) > 5 else ''}")
    names = sorted(latents)
    ws = np.stack([read_latent(latents[name], num_ws, w_dim) for name in names])
    labels = [read_label_png(masks[name], num_classes, resolution) for name in names]
    return names, ws, np.stack(labels)


def seg_files(names, pixels, labels, uncertainty, ws, num_classes: int, class_names, header: dict) -> dict:
    """The outputs of `jaxgan editgan seg`: per image NAME.png, NAME_labels.png, NAME_seg.png; ws.npy, seg.json."""
    files = {"ws.npy": lambda f: np.save(f, ws),
             "seg.json": json_writer({**header, "images": [
                 {"name": n, "uncertainty": float(u), "classes": sorted(int(c) for c in np.unique(lab))}
                 for n, u, lab in zip(names, uncertainty, labels)]})}
    for name, image, label in zip(names, pixels, labels):
        files[f"{name}.png"] = png_writer(image)
        files[f"{name}_labels.png"] = write_label_png(label)
        files[f"{name}_seg.png"] = png_writer(segmentation_figure(image, label, num_classes, class_names))
    return files


def edit_files(names, result: dict, regions, num_classes: int, class_names, meta: dict, loss_names,
               single: bool) -> tuple[dict, list[dict], list[str]]:
    """(files, edit.json entries, report lines) of `jaxgan editgan edit` for the result of `editgan.edit`: per edit
    NAME_after.png, NAME_labels.png, NAME_compare.png, NAME_vector.npz (and edit_vector.npz when the job is a
    `single` edit). `meta` goes into every edit vector. The summary files are `edit_summary_files`."""
    from jaxgan.sampling import to_uint8
    before, after = to_uint8(result["images_before"]), to_uint8(result["images_after"])
    files, entries, lines = {}, [], []
    for i, name in enumerate(names):
        losses, class_ids = result["losses"][i], result["class_ids"][i]
        vector_meta = {**meta, **({"class_names": [class_names[c] for c in class_ids]} if class_names else {})}
        files[f"{name}_after.png"] = png_writer(after[i])
        files[f"{name}_labels.png"] = write_label_png(result["labels_after"][i])
        files[f"{name}_compare.png"] = png_writer(before_after_figure(
            before[i], result["labels_before"][i], after[i], result["labels_after"][i], num_classes,
            region=regions[i], names=class_names))
        files[f"{name}_vector.npz"] = edit_vector_writer(result["vectors"][i], class_ids, vector_meta)
        if single:
            files["edit_vector.npz"] = edit_vector_writer(result["vectors"][i], class_ids, vector_meta)
        entries.append({
            "name": name, "class_ids": class_ids, "region_pixels": int(result["region_pixels"][i]),
            "first": dict(zip(loss_names, map(float, losses[0]))) if len(losses) else {},
            "last": dict(zip(loss_names, map(float, losses[-1]))) if len(losses) else {},
            "vector_norm": float(np.linalg.norm(result["vectors"][i])),
        })
        if len(losses):
            lines.append(f"{name}: cross-entropy in the region {losses[0][2]:.4f} -> {losses[-1][2]:.4f}, "
                         f"LPIPS outside {losses[-1][0]:.4f}; classes {class_ids}")
    return files, entries, lines


def edit_summary_files(ws, entries: list[dict], header: dict, loss_names) -> dict:
    """`jaxgan editgan edit`'s summary of every edit: ws_edited.npy (the edited latents) and edit.json (`header`,
    then the entries of `edit_files`)."""
    return {"ws_edited.npy": lambda f: np.save(f, np.asarray(ws)),
            "edit.json": json_writer({**header, "loss_names": list(loss_names), "edits": entries})}


def apply_files(names, result: dict, class_ids, num_classes: int, class_names, loss_names) -> tuple[dict, list[dict]]:
    """(files, apply.json entries) of `jaxgan editgan apply` for the result of `editgan.apply_and_refine`: per image
    NAME_after.png, NAME_labels.png, NAME_compare.png. The summary files are `apply_summary_files`."""
    from jaxgan.sampling import to_uint8
    before, after = to_uint8(result["images_before"]), to_uint8(result["images_after"])
    files, entries = {}, []
    for i, name in enumerate(names):
        region = (np.isin(result["labels_before"][i], class_ids) | np.isin(result["labels_after"][i], class_ids)
                  if class_ids else None)
        files[f"{name}_after.png"] = png_writer(after[i])
        files[f"{name}_labels.png"] = write_label_png(result["labels_after"][i])
        files[f"{name}_compare.png"] = png_writer(before_after_figure(
            before[i], result["labels_before"][i], after[i], result["labels_after"][i], num_classes,
            region=region, names=class_names))
        losses = result["losses"][i]
        entries.append({"name": name, "refined_region_pixels": int(result["region_pixels"][i]),
                        "last": dict(zip(loss_names, map(float, losses[-1]))) if len(losses) else {}})
    return files, entries


def apply_summary_files(ws, entries: list[dict], header: dict) -> dict:
    """`jaxgan editgan apply`'s summary of every image: ws_after.npy and apply.json (`header`, then the entries of
    `apply_files`)."""
    return {"ws_after.npy": lambda f: np.save(f, np.asarray(ws)),
            "apply.json": json_writer({**header, "images": entries})}
