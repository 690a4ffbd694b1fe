"""torch.save zip files written without torch (`checkpoints_convert.torch_writer`): read back by the project's reader,
and structurally what torch's reader expects (records, 64-byte alignment, only the globals torch's weights-only
unpickler allows). Whether real torch reads them was checked by hand once (torch 2.13, `torch.load(weights_only=True)`
and `mmap=True`); torch is no dependency of the tests."""

import collections
import pickletools
import struct
import zipfile

import ml_dtypes
import numpy as np
import pytest

from checkpoints_convert.torch_reader import load_torch_file
from checkpoints_convert.torch_writer import STORAGE_ALIGNMENT, pickle_bytes, write_torch_file
from tests.helpers import fixture_path

# What torch/_weights_only_unpickler.py allows of the globals a state dict needs (its _get_allowed_globals: the
# OrderedDict, _rebuild_tensor_v2, the typed storage classes).
WEIGHTS_ONLY_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2"} | {
    f"torch.{name}Storage" for name in ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
                                        "Bool")}


def pickle_globals(data: bytes) -> set[str]:
    """The 'module.name' of every GLOBAL / STACK_GLOBAL in a pickle, from its opcodes alone."""
    names, strings = set(), []
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
        elif opcode.name == "STACK_GLOBAL":
            names.add(".".join(strings[-2:]))
        if isinstance(arg, str):
            strings.append(arg)
    return names


def sample():
    rng = np.random.RandomState(0)
    return {"g_ema": collections.OrderedDict([
        ("conv.weight", rng.randn(1, 3, 4, 1, 1).astype(np.float32)),
        ("noise_strength", np.array(0.25, np.float32)),  # 0-d
        ("empty", np.zeros((0, 3), np.float32)),
        ("half", rng.randn(5).astype(np.float16)),
        ("bf16", rng.randn(2, 2).astype(ml_dtypes.bfloat16)),
        ("steps", np.arange(7, dtype=np.int64)),
        ("mask", np.array([True, False])),
    ]), "latent_avg": rng.randn(64).astype(np.float32), "iteration": 70_000, "note": ("a", None, -1.5, 2 ** 40)}


def written(tmp_path, obj, name="G"):
    path = tmp_path / f"{name}.pt"
    with open(path, "wb") as f:
        write_torch_file(f, obj, name)
    return path


def test_reader_returns_what_was_written(tmp_path):
    obj = sample()
    back = load_torch_file(written(tmp_path, obj))
    assert type(back["g_ema"]) is collections.OrderedDict and list(back["g_ema"]) == list(obj["g_ema"])
    for key, value in obj["g_ema"].items():
        assert back["g_ema"][key].dtype == value.dtype and back["g_ema"][key].shape == value.shape, key
        np.testing.assert_array_equal(back["g_ema"][key], value, err_msg=key)
    np.testing.assert_array_equal(back["latent_avg"], obj["latent_avg"])
    assert back["iteration"] == 70_000 and back["note"] == ("a", None, -1.5, 2 ** 40)


def test_zip_layout_is_torchs(tmp_path):
    path = written(tmp_path, sample(), "exported")
    raw = path.read_bytes()
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
        names = [i.filename for i in infos]
        # The records and their order as torch.save writes them (compare the fixture written by real torch).
        with zipfile.ZipFile(fixture_path("rosinality_G_res64.pt")) as real:
            real_names = [n.split("/", 1)[1] for n in real.namelist()]
        assert [n.split("/", 1)[1] for n in names if "/data/" not in n] == [
            n for n in real_names if not n.startswith("data/")]
        assert all(n.startswith("exported/") for n in names)
        assert names[:4] == ["exported/data.pkl", "exported/.format_version", "exported/.storage_alignment",
                             "exported/byteorder"]
        assert archive.read("exported/byteorder") == b"little" and archive.read("exported/version") == b"3\n"
        assert archive.read("exported/.storage_alignment") == str(STORAGE_ALIGNMENT).encode() == b"64"
        assert len(archive.read("exported/.data/serialization_id")) == 40
        assert archive.read("exported/data/0") == sample()["g_ema"]["conv.weight"].astype("<f4").tobytes()
        assert archive.testzip() is None
        for info in infos:
            assert info.compress_type == zipfile.ZIP_STORED, info.filename
            name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
            assert (info.header_offset + 30 + name_len + extra_len) % 64 == 0, info.filename


def test_pickle_uses_only_weights_only_globals(tmp_path):
    data, storages = pickle_bytes(sample())
    assert data[:2] == b"\x80\x02"  # protocol 2, as torch.save
    found = pickle_globals(data)
    assert found <= WEIGHTS_ONLY_GLOBALS, found - WEIGHTS_ONLY_GLOBALS
    assert {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch.FloatStorage"} <= found
    assert len(storages) == 7 + 1
    # The checker itself sees what a hostile pickle would name.
    assert pickle_globals(b"\x80\x02cos\nsystem\n.") == {"os.system"}


def test_unsupported_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match="complex|object|storage"):
        pickle_bytes({"x": np.zeros(2, np.complex64)})
    with pytest.raises(TypeError, match="set"):
        pickle_bytes({"x": {1, 2}})
