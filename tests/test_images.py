"""Photo loading as projector.py does it: centre crop, Lanczos resize, [-1, 1]; modes and bad files."""

import numpy as np
import pytest
from PIL import Image

from jaxgan.images import ImageError, load_image, load_rgb_pm1
from tests.helpers import fixture_path


def test_centre_crop_then_lanczos_resize_like_the_projector(tmp_path):
    pixels = np.random.RandomState(0).randint(0, 256, (60, 100, 3), np.uint8)  # landscape
    Image.fromarray(pixels).save(tmp_path / "a.png")
    ours = load_image(tmp_path / "a.png", 32)
    # projector.py: crop ((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2), resize LANCZOS, no other step.
    reference = Image.fromarray(pixels[:, 20:80]).resize((32, 32), Image.LANCZOS)
    np.testing.assert_array_equal(ours, np.asarray(reference, np.float32) / 127.5 - 1)
    assert ours.dtype == np.float32 and ours.shape == (32, 32, 3)


def test_real_photo_to_grayscale_and_rgb_generators():
    rgb = load_image(fixture_path("images/rocket.jpg"), 64)
    gray = load_image(fixture_path("images/rocket.jpg"), 64, channels=1)
    assert rgb.shape == (64, 64, 3) and gray.shape == (64, 64, 1)
    assert -1 <= rgb.min() and rgb.max() <= 1


def test_alpha_is_dropped_with_a_warning(tmp_path):
    Image.new("RGBA", (20, 20), (10, 200, 30, 0)).save(tmp_path / "t.png")
    with pytest.warns(UserWarning, match="alpha channel is dropped"):
        image = load_image(tmp_path / "t.png", 16)
    np.testing.assert_allclose(image[0, 0], np.array([10, 200, 30]) / 127.5 - 1, atol=1e-6)


def test_sixteen_bit_grayscale_becomes_rgb(tmp_path):
    Image.fromarray(np.full((8, 8), 65535, np.uint16)).save(tmp_path / "g16.png")
    np.testing.assert_allclose(load_image(tmp_path / "g16.png", 8), 255 / 127.5 - 1, atol=1e-6)


def test_unreadable_and_missing_files_are_refused(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image")
    with pytest.raises(ImageError, match="not an image Pillow can read"):
        load_image(tmp_path / "x.png", 16)
    with pytest.raises(ImageError, match="no such file"):
        load_rgb_pm1(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="4 channels"):
        load_image(fixture_path("images/rocket.jpg"), 16, channels=4)


def test_lpips_reading_convention_is_x_over_127_5_minus_1(tmp_path):
    Image.fromarray(np.array([[[0, 255, 51]]], np.uint8)).save(tmp_path / "p.png")
    np.testing.assert_allclose(load_rgb_pm1(tmp_path / "p.png")[0, 0], [-1.0, 1.0, 51 / 127.5 - 1], atol=1e-7)
