"""jaxgan.latents: the one rule by which every command reads a latent file, case by case."""

import numpy as np
import pytest

from jaxgan.latents import as_latents, read_latent, read_latents

NUM_WS, W_DIM = 4, 6


def _rows(shape):
    return np.arange(np.prod(shape), dtype=np.float64).reshape(shape)


def test_w_plus_batches_are_kept():
    ws = _rows((3, NUM_WS, W_DIM))
    got = as_latents(ws, NUM_WS, W_DIM)
    assert got.dtype == np.float32 and got.shape == (3, NUM_WS, W_DIM)
    np.testing.assert_array_equal(got, ws)


def test_a_2d_array_with_num_ws_rows_is_one_w_plus_latent():
    # what `jaxgan drag` and `jaxgan invert` write for one image: it must come back as that one image
    ws = _rows((NUM_WS, W_DIM))
    got = as_latents(ws, NUM_WS, W_DIM)
    assert got.shape == (1, NUM_WS, W_DIM)
    np.testing.assert_array_equal(got[0], ws)


@pytest.mark.parametrize("shape,count", [((3, W_DIM), 3), ((1, W_DIM), 1), ((W_DIM,), 1), ((5, 1, W_DIM), 5),
                                         ((NUM_WS, 1, W_DIM), NUM_WS)])
def test_w_vectors_are_repeated_on_every_layer(shape, count):
    ws = _rows(shape)
    got = as_latents(ws, NUM_WS, W_DIM)
    assert got.shape == (count, NUM_WS, W_DIM)
    for i, w in enumerate(ws.reshape(count, W_DIM)):
        np.testing.assert_array_equal(got[i], np.tile(w, (NUM_WS, 1)))


@pytest.mark.parametrize("shape", [(3, 5), (2, 3, W_DIM), (2, NUM_WS, 5), (1, 1, 1, W_DIM), (5,)])
def test_other_shapes_are_refused_with_the_accepted_ones(shape):
    with pytest.raises(ValueError, match=rf"has shape \({shape[0]}.*\(N, {NUM_WS}, {W_DIM}\)"):
        as_latents(np.zeros(shape, np.float32), NUM_WS, W_DIM)


def test_integers_and_non_finite_values_are_refused():
    with pytest.raises(ValueError, match="must hold floats"):
        as_latents(np.zeros((NUM_WS, W_DIM), np.int64), NUM_WS, W_DIM)
    bad = np.zeros((NUM_WS, W_DIM), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        as_latents(bad, NUM_WS, W_DIM)


def test_files_and_the_single_latent_reader(tmp_path):
    np.save(tmp_path / "one.npy", _rows((1, NUM_WS, W_DIM)))
    np.save(tmp_path / "three.npy", _rows((3, NUM_WS, W_DIM)))
    np.save(tmp_path / "none.npy", np.zeros((0, NUM_WS, W_DIM), np.float32))
    np.testing.assert_array_equal(read_latent(tmp_path / "one.npy", NUM_WS, W_DIM), _rows((NUM_WS, W_DIM)))
    assert read_latents(tmp_path / "three.npy", NUM_WS, W_DIM).shape == (3, NUM_WS, W_DIM)
    with pytest.raises(ValueError, match="holds 3 latents; one is needed"):
        read_latent(tmp_path / "three.npy", NUM_WS, W_DIM)
    with pytest.raises(ValueError, match="holds no latents"):
        read_latents(tmp_path / "none.npy", NUM_WS, W_DIM)
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    with pytest.raises(ValueError, match="cannot read the latents"):
        read_latents(tmp_path / "junk.npy", NUM_WS, W_DIM)
