"""Unit tests of checkpoints_convert.keymap: map_keys / fill_model are strict and report every problem at once."""

import jax
import numpy as np
import pytest
from flax import nnx

from checkpoints_convert.keymap import ConversionError, KeyRule, fill_model, map_keys
from jaxgan.models import stylegan2
from jaxgan.models.stylegan2 import GeneratorConfig

TINY = GeneratorConfig(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 8),
                       mapping_layers=2)
IDENTITY = [KeyRule(r"(.+)", r"\1")]


def _flatten(tree, prefix=""):
    """Nested pure dict -> {dotted path: numpy array} (written here, independently of keymap's own walk)."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = np.asarray(value)
    return flat


@pytest.fixture(scope="module")
def tiny():
    G = stylegan2.init_generator(TINY, jax.random.key(0))
    params = _flatten(nnx.to_pure_dict(G.params))
    buffers = _flatten(nnx.to_pure_dict(G.buffers))
    # w_avg is initialised to zeros; make it distinguishable so the round trip proves it lands in the buffers.
    buffers["mapping.w_avg"] = np.arange(TINY.w_dim, dtype=np.float32) + 0.5
    return params, buffers


def _message(excinfo) -> str:
    return str(excinfo.value)


def test_tiny_generator_round_trips_through_flat_dict(tiny):
    params, buffers = tiny
    assert "mapping.fc0.weight" in params and "synthesis.b8.conv0.noise_const" in buffers  # sanity of the walk
    mapped = map_keys({**params, **buffers}, IDENTITY)
    G = fill_model(stylegan2.abstract_model(TINY), mapped)
    got_params = _flatten(nnx.to_pure_dict(G.params))
    got_buffers = _flatten(nnx.to_pure_dict(G.buffers))
    assert set(got_params) == set(params)
    assert set(got_buffers) == set(buffers)
    for want, got in ((params, got_params), (buffers, got_buffers)):
        for name, value in want.items():
            assert got[name].dtype == np.float32, name
            np.testing.assert_array_equal(got[name], value, err_msg=name)
    assert G.config == TINY


def test_map_keys_applies_templates_callables_and_transforms():
    source = {"a.0.w": np.ones((2, 3)), "a.1.w": np.zeros((1, 4)), "const": np.full((2,), 7.0)}
    rules = [
        KeyRule(r"a\.0\.(w)", r"first.\1", transform=lambda x: x.T),
        KeyRule(r"a\.([1-9])\.w", lambda m: f"layer{int(m.group(1)) * 10}", transform=lambda x: x.reshape(-1)),
        KeyRule(r"const", None, check=lambda x: np.all(x == 7), describe="all sevens"),
    ]
    mapped = map_keys(source, rules)
    assert set(mapped) == {"first.w", "layer10"}  # the checked constant is dropped
    assert mapped["first.w"].shape == (3, 2)
    assert mapped["layer10"].shape == (4,)


def test_map_keys_rules_match_whole_keys_only():
    # `fc0` must not match `fc0.weight_extra` nor `xfc0`: a partial match would silently mis-map tensors.
    with pytest.raises(ConversionError) as excinfo:
        map_keys({"fc0.weight_extra": np.ones(1), "xfc0.weight": np.ones(1)}, [KeyRule(r"fc0\.weight", "t")])
    assert "fc0.weight_extra" in _message(excinfo) and "xfc0.weight" in _message(excinfo)


def test_fill_model_lists_all_leftovers_in_one_error(tiny):
    params, buffers = tiny
    tensors = {**params, **buffers}
    tensors["mapping.fc7.weight"] = np.ones((8, 8), np.float32)  # unknown 1
    tensors["synthesis.b8.mystery"] = np.ones((3,), np.float32)  # unknown 2
    del tensors["synthesis.b8.conv1.bias"]  # missing leaf
    tensors["mapping.fc1.bias"] = np.ones((9,), np.float32)  # wrong shape (expects (8,))
    with pytest.raises(ConversionError) as excinfo:
        fill_model(stylegan2.abstract_model(TINY), tensors)
    message = _message(excinfo)
    for needle in ("mapping.fc7.weight", "synthesis.b8.mystery", "synthesis.b8.conv1.bias", "mapping.fc1.bias",
                   "(9,)", "(8,)"):
        assert needle in message, (needle, message)


def test_fill_model_reports_missing_buffer(tiny):
    params, buffers = tiny
    tensors = {**params, **buffers}
    del tensors["mapping.w_avg"]
    with pytest.raises(ConversionError, match=r"missing mapping\.w_avg"):
        fill_model(stylegan2.abstract_model(TINY), tensors)


def test_map_keys_lists_unknown_ambiguous_and_failed_checks_together(tiny):
    params, buffers = tiny
    source = {**params, **buffers, "unknown.one": np.ones(1), "unknown.two": np.ones(1),
              "filter": np.zeros((4, 4))}
    rules = [
        KeyRule(r"(mapping\..+)", r"\1"),
        KeyRule(r"(synthesis\..+)", r"\1"),
        KeyRule(r"mapping\.fc0\.bias", "mapping.fc0.bias"),  # overlaps the first rule -> ambiguous
        KeyRule(r"filter", None, check=lambda a: np.allclose(a, 1 / 16), describe="a box filter"),
    ]
    with pytest.raises(ConversionError) as excinfo:
        map_keys(source, rules)
    message = _message(excinfo)
    assert "unknown.one" in message and "unknown.two" in message
    assert "several rules" in message and "mapping.fc0.bias" in message
    assert "filter (a box filter)" in message


def test_map_keys_reports_ambiguous_rules():
    rules = [KeyRule(r"a\.(\d+)", r"x\1"), KeyRule(r"a\.0", "y")]
    assert map_keys({"a.1": np.ones(1)}, rules) == {"x1": np.ones(1)}
    with pytest.raises(ConversionError, match=r"several rules: a\.0"):
        map_keys({"a.0": np.ones(1), "a.1": np.ones(1)}, rules)


def test_map_keys_reports_failed_constant_check():
    rule = KeyRule(r"(.*\.)?kernel", None, check=lambda a: a.shape == (4, 4) and np.allclose(a, 1 / 16),
                   describe="expected a 4x4 box")
    assert map_keys({"blur.kernel": np.full((4, 4), 1 / 16)}, [rule]) == {}
    with pytest.raises(ConversionError) as excinfo:
        map_keys({"blur.kernel": np.full((4, 4), 1 / 16), "up.kernel": np.full((4, 4), 1 / 8)}, [rule])
    message = _message(excinfo)
    assert "up.kernel (expected a 4x4 box)" in message
    assert "blur.kernel" not in message


def test_map_keys_reports_targets_written_twice():
    with pytest.raises(ConversionError, match=r"written twice: t"):
        map_keys({"a": np.ones(1), "b": np.ones(1)}, [KeyRule(r"[ab]", "t")])
