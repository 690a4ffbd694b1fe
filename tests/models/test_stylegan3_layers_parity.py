"""StyleGAN3's synthesis layers (jaxgan/models/stylegan3.py `synthesis_layer`, with `jaxgan.nn.synthesis_input`)
against the official per-layer outputs of sg3_t_res64.npz and sg3_r_res64.npz (NVlabs/stylegan3@c233a91): from
the official input features of batch element 0, each of the 15 layers in turn (L0 ... ToRGB, ws row i + 1 for
layer i, as SynthesisNetwork.forward), compared with `out/feat_<layer>` (element 0, NCHW; ToRGB before
output_scale) and the image `out/img` = 0.25 * ToRGB. Per image: the official batch-wide style RMS cancels in the
demodulation (the module docstring), so element 0 alone gives the batch's element 0. Measured: at most 2.2e-5
(T) and 5.5e-6 (R) against features of scale 1.6 to 11; the tolerance is 1e-5 of each layer's largest value."""

import functools

import jax
import numpy as np
import pytest

from jaxgan.models.stylegan3 import layer_specs, synthesis_layer
from jaxgan.nn.synthesis_input import fourier_features
from tests.helpers import fixture_module_params, load_fixture, nchw_to_nhwc, sg3_fixture_config

RTOL_TO_SCALE = 1e-5


@pytest.mark.parametrize("fixture", ["sg3_t_res64.npz", "sg3_r_res64.npz"])
def test_every_layer_matches_the_official_outputs(fixture):
    data, meta = load_fixture(fixture)
    cfg = sg3_fixture_config(meta)
    ws = data["out/ws_psi1"][:1]
    x = nchw_to_nhwc(data["out/feat_input"])
    for i, spec in enumerate(layer_specs(cfg)):
        params = fixture_module_params(data, f"synthesis.{spec.name}")
        assert {"weight", "bias", "affine.weight", "affine.bias", "magnitude_ema"} <= set(params)
        run = jax.jit(jax.vmap(functools.partial(synthesis_layer, params, spec, conv_clamp=cfg.conv_clamp)))
        x = run(x, ws[:, i + 1])
        want = nchw_to_nhwc(data[f"out/feat_{spec.name}"])
        assert x.shape == want.shape, spec.name
        err = float(np.max(np.abs(np.asarray(x) - want)))
        assert err <= RTOL_TO_SCALE * float(np.max(np.abs(want))), (spec.name, err)
    image = cfg.output_scale * np.asarray(x)
    np.testing.assert_allclose(image, nchw_to_nhwc(data["out/img"])[:1], rtol=0, atol=1e-5)


def test_the_input_and_first_layer_chain_from_ws():
    """The input layer too: ws row 0 -> Fourier features -> L0, against the official L0 output."""
    from jaxgan.models.stylegan3 import input_layout
    data, meta = load_fixture("sg3_t_res64.npz")
    cfg = sg3_fixture_config(meta)
    layout = input_layout(cfg)
    params = fixture_module_params(data, "synthesis.input")
    ws = data["out/ws_psi1"][:1]
    x = fourier_features(params, ws[:, 0], size=layout["size"], sampling_rate=layout["sampling_rate"],
                         bandwidth=layout["bandwidth"])
    spec = layer_specs(cfg)[0]
    params = fixture_module_params(data, f"synthesis.{spec.name}")
    y = jax.vmap(functools.partial(synthesis_layer, params, spec))(x, ws[:, 1])
    want = nchw_to_nhwc(data[f"out/feat_{spec.name}"])
    assert float(np.max(np.abs(np.asarray(y) - want))) <= RTOL_TO_SCALE * float(np.max(np.abs(want)))
