"""pix2pixHD's inputs and outputs on the host: label and instance maps, pairing their files, colour previews, and
the official float -> uint8 image conversion.

Follows NVIDIA/pix2pixHD@14b3b3c: `AlignedDataset.__getitem__` in `data/aligned_dataset.py` (label and instance
maps) and `tensor2im` in `util/util.py` (output images):

* label maps hold one class id per pixel: 8-bit grey ('L', Cityscapes `*_gtFine_labelIds.png`), palette ('P': the
  indices are the ids) or 16-bit grey. The official loader reads them through ToTensor and multiplies by 255 back,
  which gives the raw ids exactly, so they are used as read. With label_nc 0 the label map is an RGB picture mapped
  to [-1, 1] as ToTensor + Normalize(0.5, 0.5) do.
* instance maps (Cityscapes `*_gtFine_instanceIds.png`) are 16-bit: ids of "thing" pixels are label * 1000 + k, up
  to 33001 and more. They are read as uint16 and widened to int32. The official loader gets int16 from torchvision,
  which wraps ids above 32767 to negative numbers; the wrap is a bijection on the ids of one map, and the edge map
  only asks whether neighbouring ids differ, so it is the same either way.
* output images: `util.tensor2im`, (x + 1) / 2 * 255 in float32, clipped to [0, 255], then truncated (not rounded)
  to uint8.

Pairing (folders): the instance map of label file `NAME.png` is `NAME.png` in the instance folder, except that a
stem ending in `labelIds` looks for the same stem ending in `instanceIds` (Cityscapes: `X_gtFine_labelIds.png` <->
`X_gtFine_instanceIds.png`). A label folder whose PNGs include `*labelIds.png` files is read for those only, so a
Cityscapes `gtFine` city folder (colour, instance and label PNGs side by side) can be given as is.
"""

from pathlib import Path

import numpy as np

from jaxgan.images import ImageError, open_image
from jaxgan.palette import voc_palette

LABEL_TAG, INSTANCE_TAG = "labelIds", "instanceIds"
_ID_MODES = ("L", "P", "1", "I;16", "I;16L", "I;16B", "I")

# Cityscapes label colours by labelId 0 ... 33 (cityscapesScripts labels.py); the ids 0-4 (unlabeled, ego vehicle,
# rectification border, out of roi, static) are black. Index 34 (license plate, labelId -1 there) takes the car
# colour, as in pix2pixHD's 35-entry colour map.
CITYSCAPES_COLORS = np.array([
    (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (0, 0, 0), (111, 74, 0), (81, 0, 81), (128, 64, 128),
    (244, 35, 232), (250, 170, 160), (230, 150, 140), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (180, 165, 180), (150, 100, 100), (150, 120, 90), (153, 153, 153), (153, 153, 153), (250, 170, 30),
    (220, 220, 0), (107, 142, 35), (152, 251, 152), (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142),
    (0, 0, 70), (0, 60, 100), (0, 0, 90), (0, 0, 110), (0, 80, 100), (0, 0, 230), (119, 11, 32), (0, 0, 142),
], np.uint8)
CITYSCAPES_LABEL_NC = len(CITYSCAPES_COLORS)


def _id_map(path, what: str) -> np.ndarray:
    image = open_image(path)
    if image.mode not in _ID_MODES:
        raise ImageError(f"{path} is a {image.mode} image; a{what} map must be single-channel ids (8-bit or 16-bit "
                         "grey, or palette indices)")
    return np.asarray(image).astype(np.int32)


def read_label_ids(path, label_nc: int) -> np.ndarray:
    """A label map -> int32 [H, W] class ids, all in [0, label_nc) (else ImageError naming the id)."""
    ids = _id_map(path, " label")
    low, high = (int(ids.min()), int(ids.max())) if ids.size else (0, 0)
    if low < 0 or high >= label_nc:
        raise ImageError(f"{path} holds label id {low if low < 0 else high}, but the generator knows ids "
                         f"0..{label_nc - 1} (label_nc {label_nc})")
    return ids


def read_label_image(path) -> np.ndarray:
    """label_nc 0: the label map is a picture -> float32 [H, W, 3] in [-1, 1] (ToTensor, Normalize(0.5, 0.5))."""
    pixels = np.asarray(open_image(path).convert("RGB"), np.float32) / np.float32(255)
    return (pixels - np.float32(0.5)) / np.float32(0.5)


def read_instance_ids(path) -> np.ndarray:
    """An instance map (16-bit Cityscapes instanceIds, or 8-bit) -> int32 [H, W] ids, uint16 values unwrapped."""
    return _id_map(path, "n instance")


def image_size(path) -> tuple[int, int]:
    """(height, width) from the file header."""
    image = open_image(path)
    return image.size[1], image.size[0]


def instance_name_for(label_name: str) -> str:
    """The instance file name paired with a label file name (module docstring)."""
    path = Path(label_name)
    if path.stem.endswith(LABEL_TAG):
        return path.stem[:-len(LABEL_TAG)] + INSTANCE_TAG + path.suffix
    return path.name


def label_files(folder: Path) -> list[Path]:
    """The label maps of a folder: its `*labelIds.png` files if it has any, else all its PNG files; sorted."""
    pngs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".png")
    tagged = [p for p in pngs if p.stem.endswith(LABEL_TAG)]
    return tagged or pngs


def pair_files(labels: Path, inst: Path | None) -> list[tuple[Path, Path | None]]:
    """[(label file, instance file or None)] for a label file or folder and an optional instance file or folder."""
    labels, inst = Path(labels), (None if inst is None else Path(inst))
    if labels.is_dir():
        files = label_files(labels)
        if not files:
            raise ImageError(f"{labels} holds no PNG label maps")
        if inst is not None and not inst.is_dir():
            raise ImageError(f"--labels {labels} is a folder, so --inst must be one too, not {inst}")
    elif labels.is_file():
        files = [labels]
    else:
        raise ImageError(f"{labels}: no such file or folder")
    if inst is None:
        return [(f, None) for f in files]
    if inst.is_file():
        return [(files[0], inst)]
    if not inst.is_dir():
        raise ImageError(f"{inst}: no such file or folder")
    pairs = [(f, inst / instance_name_for(f.name)) for f in files]
    missing = [str(i) for _, i in pairs if not i.is_file()]
    if missing:
        raise ImageError(f"no instance map for {len(missing)} label map{'s' if len(missing) > 1 else ''}: "
                         f"{', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
    return pairs


def label_palette(label_nc: int) -> np.ndarray:
    """uint8 [label_nc, 3]: the Cityscapes colours for label_nc 35, else the PASCAL VOC colour map (bit j of the id
    sets bit 7 - j // 3 of R, G or B by j % 3; class 0 black), distinct for up to 2**24 ids."""
    if label_nc == CITYSCAPES_LABEL_NC:
        return CITYSCAPES_COLORS
    return voc_palette(max(label_nc, 1))


def colorize(ids: np.ndarray, label_nc: int) -> np.ndarray:
    """int [H, W] ids in [0, label_nc) -> uint8 [H, W, 3] preview colours."""
    return label_palette(label_nc)[np.asarray(ids)]


def tensor2im(images) -> np.ndarray:
    """float [..., C] in [-1, 1] -> uint8: (x + 1) / 2 * 255 in float32, clipped, truncated (util.tensor2im)."""
    x = np.asarray(images, np.float32)
    return np.clip((x + np.float32(1)) / np.float32(2) * np.float32(255), 0, 255).astype(np.uint8)


def read_map(path, label_nc: int) -> np.ndarray:
    """A label map as the generator takes it: class ids [H, W] (label_nc > 0) or an RGB picture [H, W, 3]."""
    return read_label_ids(path, label_nc) if label_nc > 0 else read_label_image(path)


def group_by_size(pairs, label_nc: int, size_multiple: int) -> dict[tuple[int, int], list]:
    """Read every (label, instance) pair once to refuse bad input before anything runs (ids below label_nc, sizes
    that are multiples of `size_multiple`, instance maps of their label map's size); the pairs grouped by
    (height, width), in their order."""
    groups: dict[tuple[int, int], list] = {}
    for label_path, inst_path in pairs:
        size = read_map(label_path, label_nc).shape[:2]
        if size[0] % size_multiple or size[1] % size_multiple:
            raise ImageError(f"{label_path} is {size[1]}x{size[0]} pixels; this generator needs a width and height "
                             f"that are multiples of {size_multiple} (2**(n_downsample_global + "
                             "n_local_enhancers)); resize the maps with nearest-neighbour sampling first")
        if inst_path is not None:
            inst_size = read_instance_ids(inst_path).shape
            if inst_size != size:
                raise ImageError(f"{inst_path} is {inst_size[1]}x{inst_size[0]} pixels but its label map "
                                 f"{label_path} is {size[1]}x{size[0]}")
        groups.setdefault(size, []).append((label_path, inst_path))
    return groups


def preview(label, label_nc: int) -> np.ndarray:
    """uint8 [H, W, 3] preview of a label map: its colours (`colorize`), or the picture itself for label_nc 0."""
    return colorize(label, label_nc) if label_nc > 0 else tensor2im(label)
