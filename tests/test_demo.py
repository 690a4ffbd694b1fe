"""The bundled demo model (jaxgan/demo.py): it ships with its training record and within the size limit, and its
EditGAN encoder encodes faces it never saw far better than the mean face (the `demo` name and `jaxgan demo` on the
command line: tests/cli/test_demo.py)."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from jaxgan.demo import bundled_checkpoint


def test_the_bundled_model_ships_with_its_training_record():
    ckpt = bundled_checkpoint()
    sidecar = json.loads((ckpt / "jaxgan.json").read_text())
    assert sidecar["models"]["G"]["kind"] == "stylegan2-generator"
    training = sidecar["training"]
    assert training["dataset"].startswith("toyfaces") and training["kimg"] > 0
    size = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
    assert size < 20e6, f"the bundled checkpoint is {size / 1e6:.1f} MB; the issue allows 20 MB"


@pytest.mark.slow  # a quality check of the bundled encoder, 26 s (CI keeps tests/cli/test_demo.py's encoder start)
def test_the_bundled_encoder_reconstructs_held_out_faces_better_than_the_mean_face():
    from jaxgan.checkpoint import load_model, read_sidecar
    from jaxgan.data import toyfaces
    from jaxgan.models import encoder, stylegan2
    ckpt = bundled_checkpoint()
    record = read_sidecar(ckpt)["encoder"]
    assert record["batch_norm"] == "running"  # one 32 px image has no batch statistics
    G = load_model(ckpt, "stylegan2-generator", name="G")
    E = load_model(ckpt, "editgan-encoder")
    assert E.config.head_convs == (1, 2, 3) and E.config.max_size == G.config.img_resolution == 32
    # stream 3: neither the encoder's training faces (stream 1) nor the README's held-out set (stream 2)
    faces = toyfaces.render_batch(toyfaces.batch_seeds(3, 0, 16), 32)
    targets = jnp.asarray(faces.images, jnp.float32) / 127.5 - 1

    def psnr(ws):
        images = jnp.clip(stylegan2.synthesis(G, ws, noise_mode="const"), -1, 1)
        return float(np.mean(-10 * np.log10(np.asarray(jnp.mean(jnp.square((images - targets) / 2), axis=(1, 2, 3))))))
    encoded = psnr(encoder.encode_each(E, targets, batch_norm="running"))
    mean_face = psnr(stylegan2.mapping(G, jnp.zeros((16, G.config.z_dim)), truncation_psi=0.0))
    # measured: 20.4 vs 14.9 dB on the README's 64 held-out faces
    assert encoded > mean_face + 4, (encoded, mean_face)
