"""The bundled demo model (jaxgan/demo.py): it ships with its training record and within the size limit (the `demo`
name and `jaxgan demo` on the command line: tests/cli/test_demo.py)."""

import json

from jaxgan.demo import bundled_checkpoint


def test_the_bundled_model_ships_with_its_training_record():
    ckpt = bundled_checkpoint()
    sidecar = json.loads((ckpt / "jaxgan.json").read_text())
    assert sidecar["models"]["G"]["kind"] == "stylegan2-generator"
    training = sidecar["training"]
    assert training["dataset"].startswith("toyfaces") and training["kimg"] > 0
    size = sum(p.stat().st_size for p in ckpt.rglob("*") if p.is_file())
    assert size < 20e6, f"the bundled checkpoint is {size / 1e6:.1f} MB; the issue allows 20 MB"
