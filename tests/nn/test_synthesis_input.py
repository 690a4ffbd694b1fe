"""StyleGAN3's Fourier-feature input (jaxgan/nn/synthesis_input.py) against the official `SynthesisInput` output
of sg3_t_res64.npz (`out/feat_input` = G.synthesis.input(ws[:, 0]) for batch element 0, with the fixture's
non-identity user transform, 36 x 36, sampling rate 16, bandwidth 2: meta `input_band`)."""

import jax
import numpy as np

from jaxgan.nn.synthesis_input import fourier_features
from tests.helpers import fixture_module_params, load_fixture, nchw_to_nhwc


def test_fourier_features_match_the_official_input_layer():
    data, meta = load_fixture("sg3_t_res64.npz")
    params = fixture_module_params(data, "synthesis.input")
    assert sorted(params) == ["affine.bias", "affine.weight", "freqs", "phases", "transform", "weight"]
    band, first = meta["input_band"], meta["layers"][meta["layer_names"][0]]
    w = data["out/ws_psi1"][:1, 0]
    got = jax.jit(lambda p, w: fourier_features(p, w, size=tuple(first["in_size"]),
                                                sampling_rate=band["sampling_rate"],
                                                bandwidth=band["bandwidth"]))(params, w)
    want = nchw_to_nhwc(data["out/feat_input"])
    assert got.shape == want.shape == (1, 36, 36, 32)
    err = float(np.max(np.abs(np.asarray(got) - want)))
    assert err <= 1e-5 * float(np.max(np.abs(want))), err
