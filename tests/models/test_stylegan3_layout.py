"""StyleGAN3's layer schedule (jaxgan/models/stylegan3.py `layer_specs`, `input_layout`) against the layer tables the
official code built for the three fixture generators (meta `layers`, `layer_names`, `input_band` of sg3_t_res64,
sg3_r_res64 and sg3_t_res64_fp16: T and R, fp16 flags on and off) and against the layer names of their state
dicts."""

import pytest

from jaxgan.models.stylegan3 import input_layout, layer_specs
from tests.helpers import load_fixture, sg3_fixture_config

FIXTURES = ("sg3_t_res64.npz", "sg3_r_res64.npz", "sg3_t_res64_fp16.npz")


@pytest.mark.parametrize("name", FIXTURES)
def test_layer_specs_are_the_official_layers(name):
    data, meta = load_fixture(name)
    cfg = sg3_fixture_config(meta)
    specs = layer_specs(cfg)
    assert [s.name for s in specs] == meta["layer_names"] and cfg.num_ws == meta["num_ws"]
    for spec in specs:
        want = meta["layers"][spec.name]
        got = {"in_size": [spec.in_size] * 2, "out_size": [spec.out_size] * 2, "in_channels": spec.in_channels,
               "out_channels": spec.out_channels, "in_sampling_rate": spec.in_sampling_rate,
               "out_sampling_rate": spec.out_sampling_rate, "tmp_sampling_rate": spec.tmp_sampling_rate,
               "up_factor": spec.up_factor, "down_factor": spec.down_factor, "up_taps": spec.up_taps,
               "down_taps": spec.down_taps, "down_radial": spec.down_radial, "padding": list(spec.padding),
               "is_torgb": spec.is_torgb, "is_critically_sampled": spec.is_critically_sampled,
               "use_fp16": spec.use_fp16, "conv_kernel": spec.conv_kernel}
        assert got == {k: want[k] for k in got}, spec.name
        # the filters the checkpoint stores: present exactly where the layer resamples
        assert (f"param/synthesis.{spec.name}.up_filter" in data.files) == want["has_up_filter"] == (spec.up_taps > 1)
        assert (f"param/synthesis.{spec.name}.down_filter" in data.files) == want["has_down_filter"]


@pytest.mark.parametrize("name", FIXTURES)
def test_input_layout_is_the_official_input(name):
    data, meta = load_fixture(name)
    layout = input_layout(sg3_fixture_config(meta))
    first = meta["layers"][meta["layer_names"][0]]
    assert layout["size"] == tuple(first["in_size"]) and layout["channels"] == first["in_channels"]
    assert data["param/synthesis.input.freqs"].shape == (layout["channels"], 2)
    if "input_band" in meta:
        assert layout["sampling_rate"] == meta["input_band"]["sampling_rate"]
        assert layout["bandwidth"] == pytest.approx(meta["input_band"]["bandwidth"])
