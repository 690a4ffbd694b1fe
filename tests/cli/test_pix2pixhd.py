"""`jaxgan convert --kind pix2pixhd` + `jaxgan pix2pixhd` end to end on the fixture's latest_net_G.pth and PNGs.

The written image must be the official output (out/G, batch element 0, the official LocalEnhancer on the same
label and instance maps) through the official uint8 conversion; float32 differences of ~1e-5 may flip a value that
lies on a rounding boundary by one grey level. Measured: 4 of 24,576 values differ, by 1, each with the official
float value within 1.2e-4 grey levels of an integer. Then folders (Cityscapes naming), batching, and refusals that
write nothing.
"""

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from jaxgan import label_maps
from jaxgan.cli import main
from tests.helpers import assert_refused, fixture_path, load_fixture

LABEL_PNG, INST_PNG = "pix2pixhd_small_label.png", "pix2pixhd_small_inst.png"
MAX_FLIPPED = 8          # values allowed to differ by one grey level ...
BOUNDARY_DISTANCE = 2e-3  # ... and only where the official float value is this close to an integer


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    dst = tmp_path_factory.mktemp("p2p") / "label2city_small"
    result = run("convert", fixture_path("pix2pixhd_small_latest_net_G.pth"), dst, "--kind", "pix2pixhd",
                 "--label-nc", "35")
    assert result.exit_code == 0, result.output
    assert "G: pix2pixhd-generator (local, ngf 2, input 36 channels: label_nc 35 + instance edges)" in result.output
    return dst


@pytest.fixture(scope="module")
def single(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("p2p_single")
    result = run("pix2pixhd", ckpt, "--labels", fixture_path(LABEL_PNG), "--inst", fixture_path(INST_PNG),
                 "--outdir", out)
    assert result.exit_code == 0, result.output
    return out


def official_float_pixels():
    """(x + 1) / 2 * 255 of the official output, float32 as util.tensor2im computes it."""
    data, _ = load_fixture("pix2pixhd_small.npz")
    x = np.transpose(data["out/G"][0], (1, 2, 0)).astype(np.float32)
    return (x + np.float32(1)) / np.float32(2) * np.float32(255)


def test_written_image_is_the_official_output_through_tensor2im(single):
    got = np.asarray(Image.open(single / "pix2pixhd_small_label_synthesized_image.png"))
    values = official_float_pixels()
    expected = label_maps.tensor2im(np.transpose(load_fixture("pix2pixhd_small.npz")[0]["out/G"][0], (1, 2, 0)))
    np.testing.assert_array_equal(expected, np.clip(values, 0, 255).astype(np.uint8))  # tensor2im is that rule
    assert got.shape == (64, 128, 3) and got.dtype == np.uint8
    flipped = got != expected
    assert flipped.sum() <= MAX_FLIPPED, f"{flipped.sum()} values differ"
    assert np.all(np.abs(got.astype(int) - expected.astype(int)) <= 1)
    distance = np.abs(values[flipped] - np.round(values[flipped]))
    assert np.all(distance <= BOUNDARY_DISTANCE), distance


def test_label_preview_uses_the_cityscapes_colours(single):
    preview = np.asarray(Image.open(single / "pix2pixhd_small_label_input_label.png"))
    labels = np.asarray(Image.open(fixture_path(LABEL_PNG)))
    np.testing.assert_array_equal(preview, label_maps.CITYSCAPES_COLORS[labels])
    assert tuple(label_maps.CITYSCAPES_COLORS[26]) == (0, 0, 142)  # car
    assert sorted(p.name for p in single.iterdir()) == ["pix2pixhd_small_label_input_label.png",
                                                        "pix2pixhd_small_label_synthesized_image.png"]


def _cityscapes_folders(root, flip_second=True):
    """labels/ with two *_gtFine_labelIds.png and a colour image to skip, inst/ with the *_gtFine_instanceIds.png."""
    labels, inst = root / "labels", root / "inst"
    labels.mkdir()
    inst.mkdir()
    shutil.copy(fixture_path(LABEL_PNG), labels / "a_gtFine_labelIds.png")
    shutil.copy(fixture_path(INST_PNG), inst / "a_gtFine_instanceIds.png")
    label = Image.open(fixture_path(LABEL_PNG))
    instance = Image.open(fixture_path(INST_PNG))
    if flip_second:
        label, instance = (im.transpose(Image.Transpose.FLIP_LEFT_RIGHT) for im in (label, instance))
    label.save(labels / "b_gtFine_labelIds.png")
    instance.save(inst / "b_gtFine_instanceIds.png")
    Image.new("RGB", (128, 64), (128, 64, 128)).save(labels / "a_gtFine_color.png")
    return labels, inst


def test_folders_pair_cityscapes_names_and_batch_over_devices(ckpt, single, tmp_path):
    labels, inst = _cityscapes_folders(tmp_path)
    out = tmp_path / "out"
    result = run("pix2pixhd", ckpt, "--labels", labels, "--inst", inst, "--outdir", out, "--batch-size", "2")
    assert result.exit_code == 0, result.output
    assert "wrote 2 images" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "a_gtFine_labelIds_input_label.png", "a_gtFine_labelIds_synthesized_image.png",
        "b_gtFine_labelIds_input_label.png", "b_gtFine_labelIds_synthesized_image.png"]
    a = np.asarray(Image.open(out / "a_gtFine_labelIds_synthesized_image.png"))
    one = np.asarray(Image.open(single / "pix2pixhd_small_label_synthesized_image.png"))
    assert np.abs(a.astype(int) - one).max() <= 1 and (a != one).sum() <= MAX_FLIPPED
    b = np.asarray(Image.open(out / "b_gtFine_labelIds_synthesized_image.png"))
    assert b.shape == a.shape and not np.array_equal(b, a)


def test_pairing_rule():
    assert label_maps.instance_name_for("x_gtFine_labelIds.png") == "x_gtFine_instanceIds.png"
    assert label_maps.instance_name_for("frame7.png") == "frame7.png"


def _bad_label(tmp_path, transform):
    labels = np.asarray(Image.open(fixture_path(LABEL_PNG))).copy()
    path = tmp_path / "bad_label.png"
    Image.fromarray(transform(labels)).save(path)
    return path


def _set_id(ids):
    ids[3, 5] = 40
    return ids


def test_label_id_outside_label_nc_is_refused(ckpt, tmp_path):
    out = tmp_path / "out"
    result = run("pix2pixhd", ckpt, "--labels", _bad_label(tmp_path, _set_id), "--inst", fixture_path(INST_PNG),
                 "--outdir", out)
    assert_refused(result, "holds label id 40, but the generator knows ids 0..34 (label_nc 35)", out)


def test_size_that_is_not_a_multiple_is_refused(ckpt, tmp_path):
    out = tmp_path / "out"
    label = _bad_label(tmp_path, lambda ids: np.ascontiguousarray(ids[:, :100]))
    result = run("pix2pixhd", ckpt, "--labels", label, "--inst", fixture_path(INST_PNG), "--outdir", out)
    assert_refused(result, "is 100x64 pixels; this generator needs a width and height that are multiples of 32", out)


def test_folder_with_a_missing_instance_map_is_refused(ckpt, tmp_path):
    labels, inst = _cityscapes_folders(tmp_path, flip_second=False)
    (inst / "b_gtFine_instanceIds.png").unlink()
    out = tmp_path / "out"
    result = run("pix2pixhd", ckpt, "--labels", labels, "--inst", inst, "--outdir", out)
    assert_refused(result, "no instance map for 1 label map: ", out)
    assert "b_gtFine_instanceIds.png" in result.output


def test_encoding_that_does_not_fit_the_weights_is_refused(ckpt, tmp_path):
    out = tmp_path / "out"
    result = run("pix2pixhd", ckpt, "--labels", fixture_path(LABEL_PNG), "--no-instance", "--outdir", out)
    assert_refused(result, "input_nc 36 does not match the input encoding: label_nc 35 + 0 instance-edge", out)
    result = run("pix2pixhd", ckpt, "--labels", fixture_path(LABEL_PNG), "--outdir", out)
    assert_refused(result, "this generator takes instance edges: give --inst", out, exit_code=2)
    result = run("pix2pixhd", ckpt, "--labels", fixture_path(LABEL_PNG), "--inst", fixture_path(INST_PNG),
                 "--label-nc", "0", "--outdir", out)
    assert_refused(result, "label_nc 0 reads each label map as an RGB picture (3 channels), but this generator takes "
                           "35 label channels", out)


def test_checkpoint_without_a_pix2pixhd_generator_is_refused(tmp_path):
    other = tmp_path / "not_p2p"
    other.mkdir()
    (other / "jaxgan.json").write_text('{"format": "jaxgan-checkpoint", "format_version": 1, "models": {}}')
    out = tmp_path / "out"
    result = run("pix2pixhd", other, "--labels", fixture_path(LABEL_PNG), "--outdir", out)
    assert_refused(result, "holds no pix2pixHD generator", out)


def test_label_nc_0_reads_the_label_map_as_a_picture(tmp_path):
    """--label_nc 0 models take the label map as an RGB image in [-1, 1] (ToTensor + Normalize(0.5, 0.5))."""
    import jax

    from jaxgan.checkpoint import save_checkpoint
    from jaxgan.models import pix2pixhd
    cfg = pix2pixhd.Pix2PixHDGeneratorConfig(input_nc=4, label_nc=0, ngf=2, n_downsample_global=1, n_blocks_global=1)
    ckpt = save_checkpoint(tmp_path / "rgb", {"G": pix2pixhd.init_generator(cfg, jax.random.key(0))})
    picture = np.zeros((8, 12, 3), np.uint8)
    picture[:, :6] = (0, 51, 255)
    Image.fromarray(picture).save(tmp_path / "pic.png")
    np.testing.assert_allclose(label_maps.read_label_image(tmp_path / "pic.png")[0, 0], [-1.0, -0.6, 1.0], atol=1e-6)
    inst = np.zeros((8, 12), np.uint16)
    inst[:, 6:] = 40000
    Image.fromarray(inst).save(tmp_path / "inst.png")
    out = tmp_path / "out"
    result = run("pix2pixhd", ckpt, "--labels", tmp_path / "pic.png", "--inst", tmp_path / "inst.png", "--outdir", out)
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(out / "pic_synthesized_image.png")).shape == (8, 12, 3)
    assert np.asarray(Image.open(out / "pic_input_label.png")).shape == (8, 12, 3)


def test_convert_refuses_encoding_options_elsewhere_and_encodings_that_do_not_fit(tmp_path):
    dst = tmp_path / "ck"
    result = run("convert", fixture_path("pix2pixhd_small_latest_net_G.pth"), dst, "--label-nc", "35")
    assert_refused(result, "--label-nc, --no-instance and --feat-num only go with --kind pix2pixhd", dst, exit_code=2)
    result = run("convert", fixture_path("pix2pixhd_small_latest_net_G.pth"), dst, "--kind", "pix2pixhd",
                 "--no-instance")
    assert_refused(result, "pix2pixhd_small_latest_net_G.pth: G: input_nc 36 does not match the input encoding", dst)


def test_label_nc_0_image_is_the_generator_on_the_encoded_picture(tmp_path):
    """The written image for a --label-nc 0 model is `pix2pixhd.generate` on the input the official code builds,
    written out here: the RGB picture read as aligned_dataset.py reads it (ToTensor: x / 255, then
    Normalize(0.5, 0.5): (x - 0.5) / 0.5), then the instance edge map of util get_edges (1 at both pixels of every
    horizontally or vertically adjacent pair of different ids), through util.tensor2im: (x + 1) / 2 * 255 in
    float32, clipped to [0, 255], truncated. The preview is tensor2im of the picture channels."""
    import jax

    from jaxgan.checkpoint import save_checkpoint
    from jaxgan.models import pix2pixhd
    cfg = pix2pixhd.Pix2PixHDGeneratorConfig(input_nc=4, label_nc=0, ngf=4, n_downsample_global=1, n_blocks_global=1)
    G = pix2pixhd.init_generator(cfg, jax.random.key(1))
    ckpt = save_checkpoint(tmp_path / "rgb", {"G": G})
    rng = np.random.RandomState(0)
    picture = rng.randint(0, 256, (16, 24, 3)).astype(np.uint8)
    picture[:, :8] = (0, 51, 255)  # a flat region beside the noise
    Image.fromarray(picture).save(tmp_path / "pic.png")
    inst = np.zeros((16, 24), np.uint16)
    inst[:, 12:] = 40000
    inst[4:9, 3:7] = 7
    Image.fromarray(inst).save(tmp_path / "inst.png")
    out = tmp_path / "out"
    result = run("pix2pixhd", ckpt, "--labels", tmp_path / "pic.png", "--inst", tmp_path / "inst.png", "--outdir", out)
    assert result.exit_code == 0, result.output

    label = (picture.astype(np.float32) / np.float32(255) - np.float32(0.5)) / np.float32(0.5)
    edge = np.zeros(inst.shape, bool)
    dx, dy = inst[:, 1:] != inst[:, :-1], inst[1:, :] != inst[:-1, :]
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    edge[1:, :] |= dy
    edge[:-1, :] |= dy
    # columns 11 and 12 on all 16 rows; the 5x4 box's 14 border pixels and its 5 + 5 + 4 + 4 outer neighbours
    assert edge.sum() == 32 + 14 + 18
    encoded = np.concatenate([label, edge[..., None].astype(np.float32)], axis=-1)[None]
    x = np.asarray(pix2pixhd.generate(G, encoded))[0].astype(np.float32)
    expected = np.clip((x + np.float32(1)) / np.float32(2) * np.float32(255), 0, 255).astype(np.uint8)
    got = np.asarray(Image.open(out / "pic_synthesized_image.png"))
    assert got.shape == (16, 24, 3) and len(np.unique(expected)) > 50  # a varied image, not a flat one
    np.testing.assert_array_equal(got, expected)
    preview = np.clip((label + np.float32(1)) / np.float32(2) * np.float32(255), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "pic_input_label.png")), preview)
    assert np.abs(preview.astype(int) - picture).max() <= 1  # the picture back, up to float32 truncation
