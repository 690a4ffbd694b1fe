"""`jaxgan export`: a converted generator out to an official state-dict file and back with `jaxgan convert` (the
weights bit-identical, the config as the format holds it), and the refusals: a model that is no generator, an
existing OUT, an unknown layout, what rosinality cannot represent: one `Error:` line, nothing written."""

import numpy as np
from click.testing import CliRunner
from flax import nnx

from jaxgan.checkpoint import load_model, read_sidecar
from jaxgan.cli import main
from tests.helpers import assert_refused, generator_checkpoint


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def leaves(G):
    return {".".join(map(str, path)): np.asarray(v[...]) for part in (G.params, G.buffers)
            for path, v in nnx.to_flat_state(part)}


def test_export_and_convert_back(tmp_path_factory, tmp_path):
    ck = generator_checkpoint(tmp_path_factory)
    G = load_model(ck, name="G")
    for fmt in ("pt", "safetensors"):
        out = tmp_path / f"G.{fmt}"
        result = run("export", ck, out, "--format", fmt)
        assert result.exit_code == 0, result.output
        assert f"wrote {out}" in result.output
        # The fixture's conv_clamp 256 is in no tensor shape: the .pt export says so, the safetensors one keeps it.
        assert ("note: a .pt state dict cannot hold conv_clamp=256" in result.output) == (fmt == "pt")
        back = tmp_path / f"back-{fmt}"
        result = run("convert", out, back)
        assert result.exit_code == 0, result.output
        sidecar = read_sidecar(back)
        assert sidecar["source"]["kind"] == {"pt": "stylegan2-ada-pt", "safetensors": "safetensors"}[fmt]
        assert sidecar["models"]["G"]["config"]["conv_clamp"] == (256 if fmt == "safetensors" else None)
        got, want = leaves(load_model(back, name="G")), leaves(G)
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_export_demo_to_rosinality(tmp_path):
    out = tmp_path / "demo.pt"
    result = run("export", "demo", out, "--format", "pt", "--layout", "rosinality")
    assert result.exit_code == 0, result.output
    assert "note" not in result.output  # the demo model holds nothing a rosinality .pt loses
    assert run("convert", out, tmp_path / "back").exit_code == 0
    assert read_sidecar(tmp_path / "back")["source"]["kind"] == "rosinality"


def test_export_refusals(tmp_path_factory, tmp_path):
    ck = generator_checkpoint(tmp_path_factory)
    out = tmp_path / "G.pt"
    assert_refused(run("export", ck, out, "--format", "pt", "--model", "D"), "not a StyleGAN2 generator", out)
    assert_refused(run("export", ck, out, "--format", "pt", "--layout", "rosinality"),
                   "rosinality's Generator cannot represent this generator: conv_clamp=256", out)
    assert_refused(run("export", ck, out, "--format", "pt", "--layout", "tf"), "Invalid value for '--layout'", out,
                   exit_code=2)
    assert_refused(run("export", ck, tmp_path / "G.h5", "--format", "h5"), "Invalid value for '--format'",
                   tmp_path / "G.h5", exit_code=2)
    out.write_bytes(b"mine")
    assert_refused(run("export", ck, out, "--format", "pt"), "already exists")
    assert out.read_bytes() == b"mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["G.pt"]  # no temporary files left behind
