"""EditGAN encoder files -> the jaxgan FPNEncoder: every tensor copied under its own name, the sizes read from the
shapes, `module.` prefixes and bare state dicts accepted, anything that does not fit refused by name, and the
command line conversion of the official file (its numbers: tests/models/test_encoder_parity.py)."""

import numpy as np
import pytest
from click.testing import CliRunner
from flax import nnx

import checkpoints_convert.editgan_encoder as conv
from checkpoints_convert.keymap import ConversionError
from jaxgan.checkpoint import load_model
from jaxgan.cli import main
from tests.helpers import assert_refused, fixture_path, load_fixture


@pytest.fixture(scope="module")
def state():
    data, _ = load_fixture("editgan_encoder_res64.npz")
    return {k[len("param/"):]: data[k] for k in data.files if k.startswith("param/")}


def convert(monkeypatch, payload):
    monkeypatch.setattr(conv, "load_torch_file", lambda path: payload)
    return conv.convert_editgan_encoder("BEST_loss1.0.pth")


def _flat(E):
    return {".".join(map(str, p)): np.asarray(v[...]) for part in (E.params, E.buffers)
            for p, v in nnx.to_flat_state(part)}


def test_every_tensor_lands_under_its_state_dict_name(monkeypatch, state):
    models, notes = convert(monkeypatch, {"model_state_dict": state})
    flat = _flat(models["E"])
    used = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert set(flat) == set(used) and len(state) == 472
    for key, value in used.items():
        np.testing.assert_array_equal(flat[key], value, err_msg=key)
    assert notes["module_prefix"] is False and notes["num_ws"] == 10


def test_module_prefix_and_bare_state_dict_are_accepted(monkeypatch, state):
    prefixed = {f"module.{k}": v for k, v in state.items()}
    models, notes = convert(monkeypatch, prefixed)
    assert notes["module_prefix"] is True
    np.testing.assert_array_equal(_flat(models["E"])["fine_styles.2.linear.bias"],
                                  state["fine_styles.2.linear.bias"])


def test_fewer_fine_heads_give_fewer_w_rows(monkeypatch, state):
    cut = {k: v for k, v in state.items() if not k.startswith(("fine_styles.1.", "fine_styles.2."))}
    assert convert(monkeypatch, cut)[0]["E"].config.num_ws == 8


def test_shallower_heads_are_read_from_their_conv_keys(monkeypatch, state):
    # drop the last convs of every head: coarse 5 -> 3, medium 6 -> 4, fine 7 -> 5 (indices 0, 2, 4, ...)
    keep = {"course_styles": 3, "medium_styles": 4, "fine_styles": 5}

    def kept(key):
        parts = key.split(".")
        return not (parts[0] in keep and parts[2] == "convs" and int(parts[3]) // 2 >= keep[parts[0]])
    E = convert(monkeypatch, {k: v for k, v in state.items() if kept(k)})[0]["E"]
    assert E.config.head_convs == (3, 4, 5) and E.config.max_size == 128
    assert convert(monkeypatch, state)[0]["E"].config.head_convs == (5, 6, 7)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"FPN_module.extra.weight": np.zeros(3, np.float32)}), "FPN_module.extra.weight"),
    (lambda s: s.pop("FPN_module.layer3.2.bn2.running_var"), "missing FPN_module.layer3.2.bn2.running_var"),
    (lambda s: s.update({"medium_styles.1.linear.weight": np.zeros((64, 8), np.float32)}),
     r"medium_styles.1.linear.weight has shape \(64, 8\)"),
    (lambda s: s.update({"FPN_module.bn1.num_batches_tracked": np.zeros(3, np.float32)}), "an integer count"),
    (lambda s: s.pop("FPN_module.toplayer.weight"), "not an EditGAN FPNEncoder"),
])
def test_mismatches_are_refused_by_name(monkeypatch, state, change, message):
    broken = dict(state)
    change(broken)
    with pytest.raises(ConversionError, match=message):
        convert(monkeypatch, {"model_state_dict": broken})


def test_cli_converts_the_official_file(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(fixture_path("editgan_encoder_res64.pth")), str(tmp_path / "E"),
                                       "--kind", "editgan-encoder"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "E: editgan-encoder (FPNEncoder: W+ 10 x 64" in result.output
    E = load_model(tmp_path / "E", "editgan-encoder")
    assert E.config.num_ws == 10 and E.config.head_dim == 16


def test_cli_refuses_a_generator_file_as_an_encoder(tmp_path):
    result = CliRunner().invoke(main, ["convert", str(fixture_path("rosinality_G_res64.pt")), str(tmp_path / "E"),
                                       "--kind", "editgan-encoder"])
    assert_refused(result, "rosinality_G_res64.pt", tmp_path / "E")
