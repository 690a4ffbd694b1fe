"""jaxgan pix2pixHD against outputs of the official code (NVIDIA/pix2pixHD 14b3b3c, ../shared/fixtures).

pix2pixhd_small.npz holds a LocalEnhancer (the label2city_1024p structure at ngf 2), a GlobalGenerator, a
MultiscaleDiscriminator (getIntermFeat, 2 scales) and an Encoder with seeded weights, their inputs (label and
instance ids, the encoded input, an image) and outputs. The weights go into the models here by name (the fixture's
`G/<state-dict key>` arrays), independently of the converter, so these tests check the model maths and the input
encoding; the converter is tested in tests/checkpoints_convert/test_pix2pixhd.py. Tolerance 1e-4 max abs (FIXTURES.md);
measured: G 1.2e-5, G_global 2.2e-6, D features <= 2.9e-6, E 2.4e-7, encoded input exact. Arrays are NCHW in the
fixture.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from checkpoints_convert.keymap import fill_model
from jaxgan import label_maps
from jaxgan.models import pix2pixhd as p2p
from tests.helpers import fixture_path, load_fixture, nchw_to_nhwc

ATOL = 1e-4
LOCAL = p2p.Pix2PixHDGeneratorConfig(input_nc=36, output_nc=3, netG="local", ngf=2, n_downsample_global=4,
                                     n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3)
GLOBAL = p2p.Pix2PixHDGeneratorConfig(input_nc=36, output_nc=3, netG="global", ngf=4, n_downsample_global=3,
                                      n_blocks_global=4)
DISC = p2p.Pix2PixHDDiscriminatorConfig(input_nc=39, ndf=4, n_layers=3, num_D=2)
ENC = p2p.Pix2PixHDEncoderConfig(input_nc=3, output_nc=3, ngf=4, n_downsampling=4)


@functools.cache
def fixture():
    data, meta = load_fixture("pix2pixhd_small.npz")
    return {k: data[k] for k in data.files if k != "meta"}, meta


def weights(prefix: str) -> dict:
    return {k[len(prefix) + 1:]: v for k, v in fixture()[0].items() if k.startswith(prefix + "/")}


@functools.cache
def model(prefix: str, cfg):
    return fill_model(p2p.abstract_model(cfg), weights(prefix))


def arr(name):
    return fixture()[0][name]


def max_err(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def encoded():
    return nchw_to_nhwc(arr("in/encoded_input"))


def test_fixture_describes_the_configs_used_here():
    meta = fixture()[1]
    assert meta["label_nc"] == 35
    assert "LocalEnhancer(36, 3, ngf=2, n_downsample_global=4, n_blocks_global=9, n_local_enhancers=1, " \
           "n_blocks_local=3" in meta["G"]
    assert "GlobalGenerator(36, 3, ngf=4, n_downsampling=3, n_blocks=4" in meta["G_global"]
    assert "MultiscaleDiscriminator(39, ndf=4, n_layers=3, num_D=2, getIntermFeat=True" in meta["D"]
    assert "Encoder(3, 3, ngf=4, n_downsampling=4" in meta["E"]


def test_encode_input_reproduces_the_official_one_hot_and_edges():
    got = p2p.encode_input(arr("in/label")[:, 0], arr("in/inst")[:, 0], label_nc=35)
    assert got.shape == (2, 64, 128, 36) and got.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(got), encoded())


def test_encode_input_from_the_png_files():
    label = label_maps.read_label_ids(fixture_path("pix2pixhd_small_label.png"), 35)
    inst = label_maps.read_instance_ids(fixture_path("pix2pixhd_small_inst.png"))
    np.testing.assert_array_equal(label, arr("in/label")[0, 0])
    np.testing.assert_array_equal(inst, arr("in/inst")[0, 0])
    assert inst.max() > 255  # really a 16-bit map
    got = p2p.encode_input(label[None], inst[None], label_nc=35)
    np.testing.assert_array_equal(np.asarray(got)[0], encoded()[0])


@pytest.mark.parametrize("prefix,cfg", [("G", LOCAL), ("G_global", GLOBAL)])
def test_generator_matches_official(prefix, cfg):
    out = jax.jit(p2p.generate)(model(prefix, cfg), encoded())
    expected = nchw_to_nhwc(arr(f"out/{prefix}"))
    assert out.shape == expected.shape
    assert max_err(out, expected) <= ATOL


def test_every_discriminator_feature_matches_official():
    x = np.concatenate([encoded(), nchw_to_nhwc(arr("in/img"))], axis=-1)
    features = jax.jit(p2p.discriminate)(model("D", DISC), x)
    assert len(features) == 2 and all(len(f) == 5 for f in features)
    assert features[0][0].shape == (2, 33, 65, 4)  # pass 0: the full-resolution input (module scale1)
    for i, per_pass in enumerate(features):
        for j, feature in enumerate(per_pass):
            expected = nchw_to_nhwc(arr(f"out/D_scale{i}_feat{j}"))
            assert feature.shape == expected.shape, (i, j)
            assert max_err(feature, expected) <= ATOL, (i, j)


def test_flat_discriminator_gives_the_final_predictions():
    """getIntermFeat=False keeps one Sequential per scale (`layer{i}.{k}`): conv k = 0, 2, 5, 8, 11 for n_layers 3."""
    flat_index = {0: 0, 1: 2, 2: 5, 3: 8, 4: 11}
    flat = {}
    for key, value in weights("D").items():
        scale_layer, rest = key.split(".", 1)
        scale, layer = scale_layer[len("scale"):].split("_layer")
        flat[f"layer{scale}.{flat_index[int(layer)]}.{rest.split('.', 1)[1]}"] = value
    D = fill_model(p2p.abstract_model(p2p.Pix2PixHDDiscriminatorConfig(39, 4, 3, 2, get_interm_feat=False)), flat)
    x = np.concatenate([encoded(), nchw_to_nhwc(arr("in/img"))], axis=-1)
    out = jax.jit(p2p.discriminate)(D, x)
    for i in range(2):
        assert len(out[i]) == 1
        assert max_err(out[i][0], nchw_to_nhwc(arr(f"out/D_scale{i}_feat4"))) <= ATOL


def test_encoder_instance_means_match_official():
    out = jax.jit(p2p.encode_features)(model("E", ENC), nchw_to_nhwc(arr("in/img")), arr("in/inst")[:, 0])
    assert max_err(out, nchw_to_nhwc(arr("out/E"))) <= ATOL


# ----------------------------------------------------------------------------------------------------------------
# Hand-worked cases of the input encoding and the instance means


def test_get_edges_marks_both_pixels_of_every_change():
    inst = np.array([[1, 1, 1, 1],
                     [1, 1, 1, 1],
                     [1, 1, 2, 2],
                     [1, 1, 2, 2]])
    expected = [[0, 0, 0, 0],
                [0, 0, 1, 1],
                [0, 1, 1, 1],
                [0, 1, 1, 0]]
    np.testing.assert_array_equal(np.asarray(p2p.get_edges(inst[None]))[0], expected)


def test_int16_wrap_of_large_instance_ids_leaves_the_edges_and_means_unchanged():
    """torchvision reads 16-bit instance PNGs as int16 (33001 -> -32535); the edges compare ids only for equality."""
    rng = np.random.default_rng(0)
    ids = rng.choice(np.array([7, 26001, 33001, 33002, 65535]), size=(1, 8, 8))
    wrapped = ids.astype(np.uint16).view(np.int16).astype(np.int32)
    assert wrapped.min() < 0
    np.testing.assert_array_equal(np.asarray(p2p.get_edges(ids)), np.asarray(p2p.get_edges(wrapped)))
    feat = rng.normal(size=(1, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(jax.jit(p2p.instance_mean)(feat, ids)),
                               np.asarray(jax.jit(p2p.instance_mean)(feat, wrapped)),
                               atol=1e-6)


def test_instance_mean_averages_each_id_per_sample():
    feat = np.array([[[1.0, 2.0], [5.0, 6.0]], [[1.0, 2.0], [5.0, 6.0]]], np.float32)[..., None]
    ids = np.array([[[7, 7], [40000, 7]], [[7, 8], [8, 8]]])
    out = np.asarray(jax.jit(p2p.instance_mean)(feat, ids))[..., 0]
    np.testing.assert_allclose(out, [[[3, 3], [5, 3]], [[1, 13 / 3], [13 / 3, 13 / 3]]], rtol=1e-6)


def test_encode_input_layouts():
    label = np.array([[[0, 2], [1, 2]]])
    out = np.asarray(p2p.encode_input(label, None, label_nc=3, no_instance=True, feat=np.full((1, 2, 2, 2), 0.5)))
    assert out.shape == (1, 2, 2, 5)
    np.testing.assert_array_equal(out[0, :, :, :3].argmax(-1), label[0])
    np.testing.assert_array_equal(out[..., 3:], 0.5)
    image = np.zeros((1, 2, 2, 3), np.float32)
    assert p2p.encode_input(image, np.zeros((1, 2, 2), int), label_nc=0).shape == (1, 2, 2, 4)


def test_encode_input_refuses_label_ids_outside_label_nc():
    with pytest.raises(ValueError, match=r"label id 35 is outside \[0, 35\)"):
        p2p.encode_input(np.full((1, 2, 2), 35), np.zeros((1, 2, 2), int), label_nc=35)
    with pytest.raises(ValueError, match="instance ids are needed"):
        p2p.encode_input(np.zeros((1, 2, 2), int), None, label_nc=35)


# ----------------------------------------------------------------------------------------------------------------
# Configs


def test_local_enhancer_state_dict_names_are_the_official_keys():
    from flax import nnx
    names = {".".join(map(str, p)) for p, _ in nnx.to_flat_state(p2p.abstract_model(LOCAL).params)}
    assert names == set(weights("G"))


def test_generator_refuses_sizes_that_are_not_multiples():
    with pytest.raises(ValueError, match="multiples of 32"):
        p2p.generate(model("G", LOCAL), np.zeros((1, 64, 100, 36), np.float32))


def test_batch_norm_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="training mode"):
        p2p.Pix2PixHDGeneratorConfig(norm="batch")


def test_input_encoding_must_add_up_to_input_nc():
    with pytest.raises(ValueError, match=r"label_nc 35 \+ 0 instance-edge channels \+ feat_num 0 = 35"):
        p2p.Pix2PixHDGeneratorConfig(input_nc=36, no_instance=True)
    assert p2p.Pix2PixHDGeneratorConfig(input_nc=35, no_instance=True).label_channels == 35
    assert p2p.Pix2PixHDGeneratorConfig(input_nc=39, feat_num=3).size_multiple == 16
    assert LOCAL.size_multiple == 32 and LOCAL.global_ngf == 4


def test_random_init_follows_the_official_weights_init():
    """Conv weights ~ N(0, 0.02) (weights_init); biases U(+-1/sqrt(fan_in)), fan_in = weight.shape[1] * k * k."""
    cfg = p2p.Pix2PixHDGeneratorConfig(input_nc=5, label_nc=4, ngf=8, n_downsample_global=1, n_blocks_global=1)
    G = p2p.init_generator(cfg, jax.random.key(0))
    weight = np.asarray(G.params["model"]["1"]["weight"][...])  # (8, 5, 7, 7)
    assert abs(weight.std() - 0.02) < 0.002 and abs(weight.mean()) < 0.002
    up_bias = np.asarray(G.params["model"]["8"]["bias"][...])  # ConvTranspose2d(16, 8): fan_in 8 * 9
    assert np.abs(up_bias).max() <= 1 / np.sqrt(8 * 9) and np.abs(up_bias).max() > 0.5 / np.sqrt(8 * 9)
    again = p2p.init_generator(cfg, jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(again.params["model"]["1"]["weight"][...]), weight)


@pytest.mark.parametrize("cfg,tensors,parameters", [
    (p2p.Pix2PixHDGeneratorConfig(netG="local", ngf=32), 74, 182_857_059),  # label2city_1024p (spec §1.9)
    (p2p.Pix2PixHDGeneratorConfig(netG="global", ngf=64), 56, 182_546_755),  # the 512p recipe
])
def test_released_architectures_have_the_official_tensor_and_parameter_counts(cfg, tensors, parameters):
    leaves = jax.tree_util.tree_leaves(p2p.abstract_model(cfg).params)
    assert len(leaves) == tensors
    assert sum(int(np.prod(leaf.shape)) for leaf in leaves) == parameters
