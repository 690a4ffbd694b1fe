"""The PASCAL VOC colour map: one colour per class id, used for segmentation overlays and label-map previews.

The map of the VOC devkit (`VOCdevkit/VOCcode/VOClabelcolormap.m`, also `labelcolormap` in pix2pixHD's
`util/util.py`): bit j of the id (j = 0, 1, ..., read three at a time) sets bit 7 - j // 3 of R, G or B by j % 3, so
class 0 is black, 1 is (128, 0, 0), 2 (0, 128, 0), 3 (128, 128, 0), 4 (0, 0, 128), ... All 2**24 ids below 2**24 get
distinct colours; the first 256 use multiples of 32 up to 224, so pure white never occurs among them.
"""

import numpy as np


def voc_palette(count: int) -> np.ndarray:
    """uint8 [count, 3]: the VOC colours of ids 0 .. count - 1."""
    ids = np.arange(max(count, 0), dtype=np.int64)
    colors = np.zeros((len(ids), 3), np.int64)
    for j in range(8):
        for channel in range(3):
            colors[:, channel] |= ((ids >> (3 * j + channel)) & 1) << (7 - j)
    return colors.astype(np.uint8)
