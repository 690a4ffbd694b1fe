"""jaxgan.checkpoint: round trip, atomic publication, refusal of existing or foreign directories."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan import checkpoint, files
from jaxgan.models import stylegan2

CFG = stylegan2.GeneratorConfig(z_dim=8, c_dim=2, w_dim=8, img_resolution=8, img_channels=3, channels=(8, 4),
                                mapping_layers=2, conv_clamp=256)
D_CFG = stylegan2.DiscriminatorConfig(c_dim=2, img_resolution=8, img_channels=3, channels=(8, 4), mapping_layers=1)


def test_round_trip_restores_every_leaf_and_the_config(tmp_path):
    G = stylegan2.init_generator(CFG, jax.random.key(0))
    D = stylegan2.init_discriminator(D_CFG, jax.random.key(1))
    path = checkpoint.save_checkpoint(tmp_path / "ck", {"G": G, "D": D}, {"note": "test"})
    models, sidecar = checkpoint.load_checkpoint(tmp_path / "ck")
    assert sidecar["note"] == "test" and set(models) == {"G", "D"}
    assert models["G"].config == CFG and models["D"].config == D_CFG
    for name, original in (("G", G), ("D", D)):
        for part in ("params", "buffers"):
            a = jax.tree_util.tree_leaves(getattr(original, part))
            b = jax.tree_util.tree_leaves(getattr(models[name], part))
            assert len(a) == len(b)
            for x, y in zip(a, b):
                np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    only_g, _ = checkpoint.load_checkpoint(path, names=("G",))
    assert set(only_g) == {"G"}
    z, c = jnp.ones((1, 8)), jnp.array([[0.0, 1.0]])
    np.testing.assert_array_equal(np.asarray(stylegan2.generate(G, z, c)), np.asarray(stylegan2.generate(only_g["G"], z, c)))


def test_existing_destination_is_refused(tmp_path):
    G = stylegan2.init_generator(CFG, jax.random.key(0))
    (tmp_path / "ck").mkdir()
    with pytest.raises(FileExistsError):
        checkpoint.save_checkpoint(tmp_path / "ck", {"G": G})


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    G = stylegan2.init_generator(CFG, jax.random.key(0))

    def broken_publish(tmp, path):
        assert (tmp / checkpoint.SIDECAR).is_file()  # fails after everything was written
        raise OSError("disk full")
    monkeypatch.setattr(files, "publish", broken_publish)
    with pytest.raises(OSError, match="disk full"):
        checkpoint.save_checkpoint(tmp_path / "ck", {"G": G})
    assert list(tmp_path.iterdir()) == []


def test_foreign_or_damaged_directories_are_refused(tmp_path):
    with pytest.raises(checkpoint.CheckpointFormatError, match="not a jaxgan checkpoint"):
        checkpoint.load_checkpoint(tmp_path)
    G = stylegan2.init_generator(CFG, jax.random.key(0))
    path = checkpoint.save_checkpoint(tmp_path / "ck", {"G": G})
    with pytest.raises(checkpoint.CheckpointFormatError, match="no model 'D'"):
        checkpoint.load_checkpoint(path, names=("D",))
    sidecar = json.loads((path / checkpoint.SIDECAR).read_text())
    sidecar["format_version"] = 99
    (path / checkpoint.SIDECAR).write_text(json.dumps(sidecar))
    with pytest.raises(checkpoint.CheckpointFormatError, match="version 99"):
        checkpoint.load_checkpoint(path)
