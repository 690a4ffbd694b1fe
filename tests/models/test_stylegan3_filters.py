"""StyleGAN3's filter design in numpy (jaxgan/models/stylegan3_filters.py) against the filters the official
constructor designed with scipy (the `up_filter` / `down_filter` buffers of sg3_t_res64.npz and sg3_r_res64.npz:
separable Kaiser sincs, and the R config's radial jinc filters), and a freshly initialised generator's structure
against the official state dict."""

import numpy as np
import pytest

from jaxgan.models import stylegan3
from jaxgan.models.stylegan3_filters import bessel_j1, design_lowpass_filter
from tests.helpers import load_fixture, sg3_fixture_config


@pytest.mark.parametrize("name", ["sg3_t_res64.npz", "sg3_r_res64.npz"])
def test_designed_filters_equal_the_official_buffers(name):
    data, meta = load_fixture(name)
    checked = 0
    for spec in stylegan3.layer_specs(sg3_fixture_config(meta)):
        for kind, taps, cutoff, half_width, radial in (
                ("up", spec.up_taps, spec.in_cutoff, spec.in_half_width, False),
                ("down", spec.down_taps, spec.out_cutoff, spec.out_half_width, spec.down_radial)):
            designed = design_lowpass_filter(taps, cutoff, half_width * 2, spec.tmp_sampling_rate, radial)
            key = f"param/synthesis.{spec.name}.{kind}_filter"
            if designed is None:
                assert key not in data.files, key
                continue
            assert designed.shape == data[key].shape, key
            np.testing.assert_allclose(designed, data[key], rtol=0, atol=1e-7, err_msg=key)  # measured: equal
            checked += 1
    assert checked >= 20


def test_bessel_j1_known_values():
    # Abramowitz & Stegun table 9.1: J1(1) = 0.4400505857, J1(2) = 0.5767248078, J1(5) = -0.3275791376.
    np.testing.assert_allclose(bessel_j1(np.array([0.0, 1.0, 2.0, 5.0])), [0, 0.4400505857, 0.5767248078,
                                                                           -0.3275791376], atol=1e-10)


def test_initialised_generator_has_the_official_state_dict():
    from checkpoints_convert.keymap import leaf_shapes
    data, meta = load_fixture("sg3_r_res64.npz")
    import jax
    G = jax.jit(stylegan3.init_generator, static_argnums=0)(sg3_fixture_config(meta), jax.random.key(0))
    official = {k[len("param/"):]: data[k].shape for k in data.files if k.startswith("param/")}
    assert leaf_shapes(G) == official
    np.testing.assert_array_equal(np.asarray(G.buffers["synthesis"]["input"]["transform"][...]), np.eye(3))
