"""torchvision VGG19 -> the jaxgan trunk of pix2pixHD's VGG loss: strict key map, the convs after relu5_1 and the
classifier dropped by explicit rules, widths from the shapes, fp16 accepted.

No vgg19 file is available here, so VGG19-shaped state dicts at small widths (torchvision's names and layouts) are
fed in through a patched reader; expected values are the dict's own arrays.
"""

import numpy as np
import pytest
from flax import nnx

import checkpoints_convert.vgg19 as conv
from checkpoints_convert.keymap import ConversionError
from jaxgan.models import vgg19

WIDTHS = (2, 3, 4, 5, 6)
CLASSIFIER = {"classifier.0.weight": (7, 6), "classifier.0.bias": (7,), "classifier.3.weight": (7, 7),
              "classifier.3.bias": (7,), "classifier.6.weight": (10, 7), "classifier.6.bias": (10,)}


def state_dict(dtype=np.float32) -> dict:
    rng = np.random.default_rng(0)
    state = {}
    for index, _, cin, cout in vgg19.conv_layout(WIDTHS):
        state[f"features.{index}.weight"] = rng.normal(size=(cout, cin, 3, 3)).astype(dtype)
        state[f"features.{index}.bias"] = rng.normal(size=(cout,)).astype(dtype)
    state.update({k: np.zeros(s, dtype) for k, s in CLASSIFIER.items()})
    return state


def convert(monkeypatch, state):
    monkeypatch.setattr(conv, "load_torch_file", lambda path: state)
    monkeypatch.setattr(conv, "sha256_of", lambda path: "0" * 64)
    return conv.convert_vgg19("vgg19.pth")


def test_used_convs_are_copied_and_the_rest_dropped_by_name(monkeypatch):
    state = state_dict(np.float16)
    models, notes = convert(monkeypatch, state)
    V = models["VGG19"]
    assert V.config == vgg19.VGG19Config(widths=WIDTHS)
    params = {".".join(map(str, p)): np.asarray(v[...]) for p, v in nnx.to_flat_state(V.params)}
    assert sorted(params) == sorted(f"features.{i}.{leaf}" for i in vgg19.USED_CONVS for leaf in ("weight", "bias"))
    for key, value in params.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, state[key].astype(np.float32))
    dropped = {f"features.{i}.{leaf}" for i in (30, 32, 34) for leaf in ("weight", "bias")} | set(CLASSIFIER)
    assert notes["ignored_keys"] == sorted(dropped)
    assert notes["vgg19_is_torchvision_dcbb9e9d"] is False


@pytest.mark.parametrize("extra", ["features.36.weight", "features.1.weight", "classifier.9.bias"])
def test_unknown_key_is_refused_by_name(monkeypatch, extra):
    with pytest.raises(ConversionError, match=rf"unknown source keys: {extra}"):
        convert(monkeypatch, {**state_dict(), extra: np.zeros(3, np.float32)})


def test_missing_key_is_named(monkeypatch):
    state = {k: v for k, v in state_dict().items() if k != "features.7.bias"}
    with pytest.raises(ConversionError, match=r"missing features\.7\.bias"):
        convert(monkeypatch, state)
