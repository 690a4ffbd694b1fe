"""Uploads: size limits from the header (a decompression bomb is refused, not decoded), PNG / JPEG only, .npy
without pickle."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from jaxgan.serve import uploads


def url_of(image: Image.Image, fmt: str) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode()


def test_png_and_jpeg_decode():
    for fmt in ("PNG", "JPEG"):
        image = uploads.image_from_url(url_of(Image.new("RGB", (8, 6), (10, 200, 30)), fmt), "x", 100)
        assert image.size == (8, 6)


def test_a_decompression_bomb_is_refused_from_its_header(monkeypatch):
    bomb = url_of(Image.new("L", (20_000, 20_000)), "PNG")
    assert len(bomb) < 2_000_000  # small on the wire
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(uploads.UploadTooLarge, match="over the limit of"):
        uploads.image_from_url(bomb, "the mask", 4096 * 4096)
    assert decoded == []


def test_other_formats_and_garbage_are_refused():
    with pytest.raises(uploads.UploadError, match="PNG or a JPEG"):
        uploads.image_from_url(url_of(Image.new("RGB", (4, 4)), "GIF"), "the image", 100)
    with pytest.raises(uploads.UploadError, match="base64"):
        uploads.image_from_url("data:image/png;base64,@@@", "the image", 100)
    with pytest.raises(uploads.UploadError, match="not an image"):
        uploads.image_from_url("data:image/png;base64," + base64.b64encode(b"hello").decode(), "the image", 100)


def test_npy_is_read_without_pickle():
    buffer = io.BytesIO()
    np.save(buffer, np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(uploads.npy_from_bytes(buffer.getvalue(), "ws"), np.arange(4))
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(uploads.UploadError, match="without pickle"):
        uploads.npy_from_bytes(buffer.getvalue(), "ws")


def test_an_image_over_the_limit_but_under_pillows_guard_is_refused_before_decoding(monkeypatch):
    url = url_of(Image.new("L", (300, 200)), "PNG")
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(uploads.UploadTooLarge, match="300x200 pixels, over the limit of 1000"):
        uploads.image_from_url(url, "the image", 1000)
    assert decoded == []
