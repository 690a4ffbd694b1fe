"""jaxgan's StyleGAN3 generator against the official networks_stylegan3 outputs (sg3_t_res64.npz, sg3_r_res64.npz,
sg3_t_res64_fp16.npz; NVlabs/stylegan3@c233a91, CPU float32), the weights converted from the fixtures' state dicts
by `checkpoints_convert` with the recorded constructor arguments.

ws (three truncations) within 1e-5 (measured 1e-6); images within 1e-5 (measured 4.3e-6 T, images of scale ~1);
every synthesis layer's output of batch element 0 (the ToRGB one before output_scale) within 1e-5 of that
layer's largest value (features reach 11; measured 3.5e-6), which checks the Fourier input, both filter kinds
(separable for T, radial for R's non-critical layers) and the critically sampled layers one by one; the gradient w.r.t. ws within 1e-3 of its
largest component (measured 7.7e-5 T, 5e-6 R; R's compile takes 40 s, so CI runs T's), as for StyleGAN2. The
official layers normalise the styles by their RMS over the whole batch and jaxgan per image: demodulation removes
any scale of the styles, so a batch of 4 checks that the two agree (the drag trace test runs batches of one). The
StyleGAN3 snapshot's discriminator is StyleGAN2's, its logits within 1e-4 (measured 4.8e-7).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.stylegan2_pkl import convert_state_dict
from jaxgan.models import stylegan3
from tests.helpers import fixture_state_dict, load_fixture, nchw_to_nhwc

FIXTURES = ["sg3_t_res64.npz", "sg3_r_res64.npz", "sg3_t_res64_fp16.npz"]
ATOL = 1e-5


@functools.cache
def generator(name):
    data, meta = load_fixture(name)
    return convert_state_dict("Generator", meta["init_kwargs"], fixture_state_dict(data), which=name), data


def max_err(ours, reference):
    return float(np.max(np.abs(np.asarray(ours) - reference)))


@pytest.mark.parametrize("name", FIXTURES)
def test_mapping_matches_official_at_three_truncations(name):
    G, data = generator(name)
    run = jax.jit(stylegan3.mapping, static_argnames=("truncation_psi", "truncation_cutoff"))
    for psi, cutoff, key in ((1.0, None, "ws_psi1"), (0.7, None, "ws_psi07"), (0.5, 2, "ws_psi05_cut2")):
        ws = run(G, data["in/z"], data["in/c"], truncation_psi=psi, truncation_cutoff=cutoff)
        assert max_err(ws, data[f"out/{key}"]) <= ATOL, key


@pytest.mark.parametrize("name", FIXTURES)
def test_images_and_every_layer_output_match_official(name):
    G, data = generator(name)
    run = jax.jit(functools.partial(stylegan3.synthesis, return_features=True))
    image, features = run(G, data["out/ws_psi1"])
    assert max_err(image, nchw_to_nhwc(data["out/img"])) <= ATOL
    specs = stylegan3.layer_specs(G.config)
    assert len(features) == len(specs) == G.config.num_layers + 1
    for spec, feature in zip(specs, features):
        want = nchw_to_nhwc(data[f"out/feat_{spec.name}"])[0]
        assert feature.shape[1:] == want.shape, spec.name
        assert max_err(feature[0], want) <= ATOL * float(np.max(np.abs(want))), spec.name
    assert max_err(run(G, data["out/ws_psi07"])[0], nchw_to_nhwc(data["out/img_psi07"])) <= ATOL


@pytest.mark.parametrize("name", [FIXTURES[0], pytest.param(FIXTURES[1], marks=pytest.mark.slow)])
def test_gradient_wrt_ws_matches_official(name):
    G, data = generator(name)
    projection = jnp.asarray(nchw_to_nhwc(data["in/grad_projection"]))
    grad = jax.jit(jax.grad(lambda ws, G, p: jnp.sum(stylegan3.synthesis(G, ws) * p)))(data["out/ws_psi1"], G,
                                                                                         projection)
    reference = data["out/grad_ws"]
    assert max_err(grad, reference) / float(np.max(np.abs(reference))) <= 1e-3


def test_snapshot_discriminator_matches_official():
    from jaxgan.models import stylegan2
    data, meta = load_fixture("sg3_t_res64.npz")
    tensors = {k[len("D_param/"):]: data[k] for k in data.files if k.startswith("D_param/")}
    D = convert_state_dict("Discriminator", meta["D"]["init_kwargs"], tensors, which="D", repository="stylegan3")
    assert D.config.conv_clamp == 256  # the stylegan3 repository's default, not stylegan2-ada's None
    logits = jax.jit(stylegan2.discriminate)(D, nchw_to_nhwc(data["in/img_d"]))
    assert max_err(logits, data["out/D_logits"]) <= 1e-4
