"""Write a grid of toy faces and a grid of their colour-coded segmentations (jaxgan.data.toyfaces), to look at them.

    python scripts/toyfaces_grid.py --resolution 64 --seed 0 --count 64 --out /tmp/toyfaces.png

writes /tmp/toyfaces.png (the faces) and /tmp/toyfaces_seg.png (their labels in the PASCAL VOC colours, with the
landmarks as white dots and a legend of the classes). Faces are those of seeds seed ... seed + count - 1. --zoom
enlarges every pixel to a zoom x zoom block (nearest neighbour), so that 32 px faces can be seen.
"""

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image

from jaxgan.data import toyfaces
from jaxgan.edit.editgan_outputs import colorize, legend


def grid(tiles: np.ndarray, columns: int, gap: int = 2) -> np.ndarray:
    """uint8 [N, H, W, 3] -> one image, `columns` tiles a row, separated by white gaps."""
    n, h, w, _ = tiles.shape
    rows = -(-n // columns)
    out = np.full((rows * (h + gap) + gap, columns * (w + gap) + gap, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[gap + r * (h + gap):gap + r * (h + gap) + h, gap + c * (w + gap):gap + c * (w + gap) + w] = tile
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--resolution", type=int, default=64, choices=toyfaces.RESOLUTIONS)
    p.add_argument("--seed", type=int, default=0, help="the first face's seed")
    p.add_argument("--count", type=int, default=64, help="how many faces")
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--zoom", type=int, default=1, help="enlarge each pixel to zoom x zoom")
    p.add_argument("--out", default="/tmp/toyfaces.png", help="the faces' grid; the segmentations go to *_seg.png")
    args = p.parse_args()
    if args.seed < 0 or args.count < 1 or args.zoom < 1 or args.columns < 1:
        p.error("--seed must be >= 0 and --count, --zoom, --columns >= 1")

    start = time.perf_counter()
    faces = toyfaces.render_batch(np.arange(args.seed, args.seed + args.count), args.resolution)
    seconds = time.perf_counter() - start

    num_classes = len(toyfaces.CLASS_NAMES)
    seg = np.stack([colorize(labels, num_classes) for labels in faces.labels])
    rows, cols = np.rint(faces.landmarks).astype(int).transpose(2, 0, 1)
    inside = (rows >= 0) & (rows < args.resolution) & (cols >= 0) & (cols < args.resolution)
    batch = np.broadcast_to(np.arange(args.count)[:, None], rows.shape)
    seg[batch[inside], rows[inside], cols[inside]] = 255

    z = args.zoom
    faces_grid = grid(faces.images.repeat(z, 1).repeat(z, 2), args.columns)
    seg_grid = grid(seg.repeat(z, 1).repeat(z, 2), args.columns)
    key = legend(range(num_classes), num_classes, toyfaces.CLASS_NAMES)
    height = max(seg_grid.shape[0], key.shape[0])
    seg_grid = np.concatenate([np.pad(seg_grid, ((0, height - seg_grid.shape[0]), (0, 0), (0, 0)),
                                      constant_values=255),
                               np.pad(key, ((0, height - key.shape[0]), (0, 0), (0, 0)), constant_values=255)], 1)

    out = Path(args.out)
    seg_out = out.with_name(out.stem + "_seg" + out.suffix)
    for path, pixels in ((out, faces_grid), (seg_out, seg_grid)):
        tmp = path.with_name(path.name + ".tmp")
        Image.fromarray(pixels).save(tmp, format="PNG")
        tmp.replace(path)
    print(f"{args.count} faces at {args.resolution} px in {seconds:.3f} s -> {out}, {seg_out}")


if __name__ == "__main__":
    main()
