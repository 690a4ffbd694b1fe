"""EditGAN's host-side files and figures: class-id and region PNGs, class names, --class-ids, edit vectors, the
palette and the figures. Pure numpy + Pillow."""

import io
import json
import pickle

import numpy as np
import pytest
from PIL import Image

from jaxgan.edit import editgan_outputs as eo
from jaxgan.images import ImageError

NUM_WS, W_DIM = 6, 8


def save(path, array, mode=None):
    Image.fromarray(array, mode).save(path)
    return path


def labels_example(h=16, w=20, num_classes=5):
    rng = np.random.RandomState(0)
    return rng.randint(0, num_classes, (h, w)).astype(np.int32)


# ----------------------------------------------------------------------------------------------------------------
# Class-id maps


def test_label_png_round_trip(tmp_path):
    labels = labels_example()
    buffer = io.BytesIO()
    eo.write_label_png(labels)(buffer)
    path = tmp_path / "labels.png"
    path.write_bytes(buffer.getvalue())
    assert Image.open(path).mode == "L"
    read = eo.read_label_png(path, 5, (16, 20))
    assert read.dtype == np.int32 and np.array_equal(read, labels)


def test_label_png_palette_indices_and_16_bit(tmp_path):
    labels = labels_example(8, 8, 4).astype(np.uint8)
    image = Image.fromarray(labels, "P")
    image.putpalette([255, 255, 255, 9, 9, 9, 1, 2, 3, 200, 0, 0] + [0] * (3 * 252))  # colours must not matter
    image.save(tmp_path / "p.png")
    assert np.array_equal(eo.read_label_png(tmp_path / "p.png", 4, 8), labels)
    Image.fromarray(labels.astype(np.uint16) + 30).save(tmp_path / "i16.png")
    assert np.array_equal(eo.read_label_png(tmp_path / "i16.png", 40, 8), labels + 30)


def test_label_png_refusals(tmp_path):
    rgb = save(tmp_path / "rgb.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageError, match=r"rgb\.png is an RGB image; a class-id map must be single-channel "
                                         r"\(8-bit grey or palette indices\)"):
        eo.read_label_png(rgb, 4, 8)
    rgba = save(tmp_path / "rgba.png", np.zeros((8, 8, 4), np.uint8))
    with pytest.raises(ImageError, match="is an RGBA image; a class-id map must be single-channel"):
        eo.read_label_png(rgba, 4, 8)
    grey = save(tmp_path / "grey.png", np.full((8, 12), 2, np.uint8))
    with pytest.raises(ImageError, match=r"grey\.png is 12x8 pixels \(width x height\), but 8x8 is expected"):
        eo.read_label_png(grey, 4, 8)
    big = np.zeros((8, 8), np.uint8)
    big[3, 3], big[4, 4] = 7, 9
    save(tmp_path / "big.png", big)
    with pytest.raises(ImageError, match=r"big\.png holds class id 9 \(largest id found\), but ids must be in "
                                         r"0\.\.3 \(4 classes\)"):
        eo.read_label_png(tmp_path / "big.png", 4, 8)
    with pytest.raises(ImageError, match=r"missing\.png: no such file"):
        eo.read_label_png(tmp_path / "missing.png", 4, 8)
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match=r"junk\.png: not an image Pillow can read"):
        eo.read_label_png(tmp_path / "junk.png", 4, 8)


def test_write_label_png_refuses_ids_above_255():
    labels = np.zeros((4, 4), np.int32)
    labels[1, 1] = 256
    with pytest.raises(ValueError, match="class id 256 does not fit an 8-bit class-id PNG"):
        eo.write_label_png(labels)
    with pytest.raises(ValueError, match="class id -1 does not fit"):
        eo.write_label_png(-np.ones((4, 4), np.int32))


# ----------------------------------------------------------------------------------------------------------------
# Edit regions


def test_region_png_modes(tmp_path):
    grey = np.zeros((8, 8), np.uint8)
    grey[2:4, 5] = 1
    assert np.array_equal(eo.read_region_png(save(tmp_path / "g.png", grey), 8), grey > 0)
    color = np.zeros((8, 8, 4), np.uint8)
    color[..., 3] = 255         # alpha is ignored: opaque black is not in the region
    color[1, 1, 2] = 10         # blue only: in
    color[6, 0, 0] = 255        # red: in
    color[5, 5, 3] = 0          # transparent black: still out
    expected = np.zeros((8, 8), bool)
    expected[1, 1] = expected[6, 0] = True
    assert np.array_equal(eo.read_region_png(save(tmp_path / "c.png", color), 8), expected)
    assert np.array_equal(eo.read_region_png(save(tmp_path / "rgb.png", color[..., :3]), 8), expected)


def test_region_png_refusals(tmp_path):
    empty = save(tmp_path / "empty.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ImageError, match=r"empty\.png marks no pixels; the region must contain at least one "
                                         r"non-zero pixel"):
        eo.read_region_png(empty, 8)
    with pytest.raises(ImageError, match=r"is 8x8 pixels \(width x height\), but 16x8 is expected"):
        eo.read_region_png(empty, (8, 16))


# ----------------------------------------------------------------------------------------------------------------
# Class names and --class-ids


def test_read_class_names(tmp_path):
    (tmp_path / "names.txt").write_text("background\nwheel\n  door \n\n")
    assert eo.read_class_names(tmp_path / "names.txt", 3) == ["background", "wheel", "door"]
    (tmp_path / "names.json").write_text(json.dumps(["bg", "a", "b"]))
    assert eo.read_class_names(tmp_path / "names.json", 3) == ["bg", "a", "b"]
    with pytest.raises(ValueError, match=r"names\.txt names 3 classes, but the segmenter has 4"):
        eo.read_class_names(tmp_path / "names.txt", 4)
    (tmp_path / "gap.txt").write_text("bg\n\nb\n")
    with pytest.raises(ValueError, match=r"line 2 \(class 1\) is empty"):
        eo.read_class_names(tmp_path / "gap.txt", 3)
    (tmp_path / "bad.json").write_text('{"0": "bg"}')
    with pytest.raises(ValueError, match="expected a JSON list of strings"):
        eo.read_class_names(tmp_path / "bad.json", 1)


def test_class_ids_arg():
    assert eo.class_ids_arg("3,5,7", 10) == [3, 5, 7]
    assert eo.class_ids_arg("3-5", 10) == [3, 4, 5]
    assert eo.class_ids_arg(" 9, 1-2 ,2", 10) == [1, 2, 9]
    assert eo.class_ids_arg("wheel,0", 3, names=["bg", "Wheel", "door"]) == [0, 1]
    with pytest.raises(ValueError, match=r"class id 10 is out of range; the segmenter has 10 classes \(ids 0-9\)"):
        eo.class_ids_arg("3,10", 10)
    with pytest.raises(ValueError, match="class id 12 is out of range"):
        eo.class_ids_arg("8-12", 10)
    with pytest.raises(ValueError, match="runs backwards"):
        eo.class_ids_arg("5-3", 10)
    with pytest.raises(ValueError, match="'x' is not a class id or a range"):
        eo.class_ids_arg("3,x", 10)
    with pytest.raises(ValueError, match="is empty"):
        eo.class_ids_arg(" , ", 10)


# ----------------------------------------------------------------------------------------------------------------
# Edit vectors


def vector_example():
    return np.random.RandomState(1).randn(NUM_WS, W_DIM).astype(np.float32)


def test_edit_vector_round_trip(tmp_path):
    vector = vector_example()
    path = tmp_path / "edit.vec"  # saved as given: no '.npz' appended
    eo.save_edit_vector(path, vector, [5, 3, 3], {"resolution": 64, "steps": 30})
    assert path.exists()
    data = np.load(path, allow_pickle=False)
    assert sorted(data.files) == ["class_ids", "meta", "vector"]
    assert data["class_ids"].dtype == np.int32 and data["vector"].dtype == np.float32
    loaded, ids, meta = eo.load_edit_vector(path, NUM_WS, W_DIM, num_classes=6)
    assert np.array_equal(loaded, vector) and ids == [3, 5]
    assert meta == {"format": "jaxgan-editgan-vector", "version": 1, "num_ws": NUM_WS, "w_dim": W_DIM,
                    "scale_convention": "w + s * vector", "resolution": 64, "steps": 30}
    buffer = io.BytesIO()
    eo.edit_vector_writer(vector, [], {})(buffer)
    (tmp_path / "b.npz").write_bytes(buffer.getvalue())
    assert eo.load_edit_vector(tmp_path / "b.npz", NUM_WS, W_DIM)[1] == []


def test_official_npy_vector_accepted_without_class_ids(tmp_path):
    vector = vector_example()
    np.save(tmp_path / "wheel_enlarge.npy", vector[None])
    loaded, ids, meta = eo.load_edit_vector(tmp_path / "wheel_enlarge.npy", NUM_WS, W_DIM)
    assert np.array_equal(loaded, vector) and ids == [] and meta == {}
    np.save(tmp_path / "flat.npy", vector.astype(np.float64))
    assert eo.load_edit_vector(tmp_path / "flat.npy", NUM_WS, W_DIM)[0].dtype == np.float32


def test_converted_pickle_cache_accepted(tmp_path):
    """The one-line conversion the pickle refusal suggests: no meta, roi_ids a plain list."""
    vector = vector_example()
    np.savez(tmp_path / "edit.npz", vector=vector, class_ids=[4, 2])
    loaded, ids, meta = eo.load_edit_vector(tmp_path / "edit.npz", NUM_WS, W_DIM)
    assert np.array_equal(loaded, vector) and ids == [2, 4] and meta == {}


def test_pickles_refused(tmp_path):
    cache = {"edit_vector": vector_example(), "roi_ids": [3]}
    for name in ("current_editing_latent_cache.pickle", "disguised.npz"):
        (tmp_path / name).write_bytes(pickle.dumps(cache))
        with pytest.raises(ValueError, match="is a Python pickle .*pickles are not loaded because loading one can "
                                             "run arbitrary code. If you trust it, convert it with numpy"):
            eo.load_edit_vector(tmp_path / name, NUM_WS, W_DIM)
    np.save(tmp_path / "objects.npy", np.array([vector_example(), None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="is a Python pickle"):
        eo.load_edit_vector(tmp_path / "objects.npy", NUM_WS, W_DIM)


def test_edit_vector_refusals(tmp_path):
    vector = vector_example()
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match=r"text\.npz is not an \.npz or \.npy file"):
        eo.load_edit_vector(tmp_path / "text.npz", NUM_WS, W_DIM)
    with pytest.raises(ValueError, match="no such file"):
        eo.load_edit_vector(tmp_path / "absent.npz", NUM_WS, W_DIM)
    np.savez(tmp_path / "nokeys.npz", delta=vector)
    with pytest.raises(ValueError, match=r"lacks 'vector' and 'class_ids' \(it has \['delta'\]"):
        eo.load_edit_vector(tmp_path / "nokeys.npz", NUM_WS, W_DIM)
    np.savez(tmp_path / "noids.npz", vector=vector)
    with pytest.raises(ValueError, match="lacks 'class_ids'"):
        eo.load_edit_vector(tmp_path / "noids.npz", NUM_WS, W_DIM)
    eo.save_edit_vector(tmp_path / "shape.npz", vector[:4], [1], {"resolution": 32})
    with pytest.raises(ValueError, match=r"has shape \(4, 8\) \(it was made for a 32 px generator\), but this "
                                         r"generator needs \(6, 8\) or \(1, 6, 8\)"):
        eo.load_edit_vector(tmp_path / "shape.npz", NUM_WS, W_DIM)
    bad = vector.copy()
    bad[0, 0], bad[1, 1] = np.nan, np.inf
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(ValueError, match="holds 2 NaN or infinite values"):
        eo.load_edit_vector(tmp_path / "nan.npy", NUM_WS, W_DIM)
    with pytest.raises(ValueError, match="NaN or infinite"):
        eo.save_edit_vector(tmp_path / "x.npz", bad, [1])
    eo.save_edit_vector(tmp_path / "range.npz", vector, [1, 40])
    with pytest.raises(ValueError, match=r"holds class id 40, but the segmenter has 32 classes \(ids 0-31\)"):
        eo.load_edit_vector(tmp_path / "range.npz", NUM_WS, W_DIM, num_classes=32)
    np.savez(tmp_path / "meta.npz", vector=vector, class_ids=[1], meta=np.array("[1, 2]"))
    with pytest.raises(ValueError, match="'meta' must be a JSON object"):
        eo.load_edit_vector(tmp_path / "meta.npz", NUM_WS, W_DIM)
    with pytest.raises(ValueError, match="class ids must be non-negative integers"):
        eo.save_edit_vector(tmp_path / "x.npz", vector, [-1])
    with pytest.raises(ValueError, match="JSON-serialisable"):
        eo.save_edit_vector(tmp_path / "x.npz", vector, [1], {"bad": object()})


# ----------------------------------------------------------------------------------------------------------------
# Palette and figures


def test_palette():
    colors = eo.palette(256)
    assert colors.shape == (256, 3) and colors.dtype == np.uint8
    assert len({tuple(c) for c in colors}) == 256
    assert tuple(colors[0]) == (0, 0, 0)
    assert tuple(colors[1]) == (128, 0, 0) and tuple(colors[2]) == (0, 128, 0) and tuple(colors[5]) == (128, 0, 128)
    assert tuple(colors[15]) == (192, 128, 128) and tuple(colors[255]) == (224, 224, 192)  # PASCAL VOC
    assert np.array_equal(eo.palette(7), colors[:7])
    with pytest.raises(ValueError):
        eo.palette(257)


def count(image, color):
    return int(np.sum(np.all(image == np.asarray(color, np.uint8), axis=-1)))


def test_legend_has_one_swatch_per_class():
    ids = [1, 2, 5, 9]  # none of them a grey that anti-aliased text could produce
    image = eo.legend(ids, 12, names=[f"class{i}" for i in range(12)], font_size=12)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    swatch = (12 + 2 - 2) ** 2  # inside the 1 px outline
    colors = eo.palette(12)
    for i in range(1, 12):
        expected = swatch if i in ids else 0
        if i in ids or len(set(colors[i])) > 1:
            assert count(image, colors[i]) == expected, i
    wrapped = eo.legend(list(range(1, 12)), 12, height=60, font_size=12)
    assert wrapped.shape[0] == 60 and wrapped.shape[1] > image.shape[1] / 2  # wrapped into several columns
    for i in range(1, 12):
        if len(set(colors[i])) > 1:
            assert count(wrapped, colors[i]) == swatch, i


def test_segmentation_figure_layout():
    h, w = 48, 40
    image = np.random.RandomState(2).randint(0, 256, (h, w, 3)).astype(np.uint8)
    labels = np.zeros((h, w), np.int32)
    labels[10:20, 5:30] = 1
    labels[30:, :] = 2
    fig = eo.segmentation_figure(image, labels, 3, names=["bg", "body", "wheel"])
    assert fig.shape[0] == h and fig.shape[1] > 2 * w + eo.GAP and fig.dtype == np.uint8
    assert np.array_equal(fig[:, :w], image)
    seg = fig[:h, w + eo.GAP:2 * w + eo.GAP]
    assert tuple(seg[0, 0]) == (0, 0, 0)
    assert tuple(seg[15, 10]) == (128, 0, 0)
    assert tuple(seg[40, 39]) == (0, 128, 0)
    assert np.array_equal(seg, eo.palette(3)[labels])
    grey = eo.segmentation_figure(image[..., :1], labels, 3)
    assert np.array_equal(grey[:, :w], np.repeat(image[..., :1], 3, axis=-1))


def test_before_after_figure_layout():
    h, w = 40, 32
    rng = np.random.RandomState(3)
    before, after = (rng.randint(0, 256, (h, w, 3)).astype(np.uint8) for _ in range(2))
    lb = np.zeros((h, w), np.int32)
    lb[5:15, 5:15] = 1
    la = lb.copy()
    la[20:30, 10:20] = 4
    region = np.zeros((h, w), bool)
    region[18:32, 8:22] = True
    fig = eo.before_after_figure(before, lb, after, la, 6, region=region)
    top = eo.title_height(h)
    assert fig.shape[0] >= top + 2 * h + eo.GAP and fig.shape[1] > 2 * w + eo.GAP
    assert np.array_equal(fig[top:top + h, :w], before)
    assert np.array_equal(fig[top:top + h, w + eo.GAP:2 * w + eo.GAP], after)
    seg_before = fig[top + h + eo.GAP:top + 2 * h + eo.GAP, :w]
    seg_after = fig[top + h + eo.GAP:top + 2 * h + eo.GAP, w + eo.GAP:2 * w + eo.GAP]
    edge = eo.region_outline(region)
    assert edge.sum() == 2 * 14 + 2 * 12 and edge[18, 8] and not edge[19, 9] and not edge[25, 15]
    for seg, labels in ((seg_before, lb), (seg_after, la)):
        assert np.all(seg[edge] == 255)                                    # the outline, in white
        assert np.array_equal(seg[~edge], eo.palette(6)[labels][~edge])    # palette colours elsewhere
    assert tuple(seg_after[25, 15]) == (0, 0, 128) and tuple(seg_before[10, 10]) == (128, 0, 0)
    assert (fig[:top, :w] < 128).any() and (fig[:top, w + eo.GAP:2 * w + eo.GAP] < 128).any()
    legend_part = fig[:, 2 * w + 2 * eo.GAP:]
    for i in (1, 4):  # present in either: swatches in the legend; 2 is absent
        assert count(legend_part, eo.palette(6)[i]) > 0
    assert count(legend_part, eo.palette(6)[2]) == 0
    plain = eo.before_after_figure(before, lb, after, la, 6)
    assert np.array_equal(plain[top + h + eo.GAP:top + 2 * h + eo.GAP, :w], eo.palette(6)[lb])
    with pytest.raises(ValueError, match="differ in size"):
        eo.before_after_figure(before, lb, after, la[:-1], 6)
