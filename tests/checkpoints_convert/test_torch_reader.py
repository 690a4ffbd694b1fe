"""Tests for checkpoints_convert.torch_reader: fixture files, hand-built torch.save files, hostile and broken files."""

import argparse
import io
import json
import os
import pickle
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from checkpoints_convert.torch_reader import (
    CheckpointError,
    EasyDict,
    PersistentObject,
    TFNetworkStub,
    UnsafeCheckpointError,
    load_network_pickle,
    load_torch_file,
)

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"


@pytest.fixture(scope="module")
def fixtures() -> Path:
    if not FIXTURES.is_dir():
        pytest.skip(f"parity fixtures not found at {FIXTURES} (expected ../shared/fixtures next to the repository)")
    return FIXTURES


def _assert_same_arrays(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for key, want in expected.items():
        got = actual[key]
        assert isinstance(got, np.ndarray), key
        assert got.dtype == want.dtype and got.shape == want.shape, key
        assert np.array_equal(got, want), key


def _npz_group(npz, prefix: str) -> dict:
    return {name[len(prefix):]: npz[name] for name in npz.files if name.startswith(prefix)}


# --------------------------------------------------------------------------------------------
# Fixture files
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sg2ada_snapshot(fixtures):
    return load_network_pickle(fixtures / "sg2ada_res64.pkl")


def test_sg2ada_snapshot_layout(sg2ada_snapshot):
    assert set(sg2ada_snapshot) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    assert isinstance(sg2ada_snapshot["training_set_kwargs"], EasyDict)
    assert sg2ada_snapshot["training_set_kwargs"].resolution == 64
    classes = {key: sg2ada_snapshot[key].class_name for key in ("G", "D", "G_ema", "augment_pipe")}
    assert classes == {"G": "Generator", "D": "Discriminator", "G_ema": "Generator", "augment_pipe": "AugmentPipe"}
    assert all(len(sg2ada_snapshot[key].module_src_sha256) == 64 for key in classes)
    synthesis = sg2ada_snapshot["G_ema"].state["_modules"]["synthesis"]
    assert isinstance(synthesis, PersistentObject) and synthesis.class_name == "SynthesisNetwork"


@pytest.mark.parametrize("network, npz_name", [("G_ema", "sg2ada_G_res64.npz"), ("D", "sg2ada_D_res64.npz")])
def test_sg2ada_state_dict_matches_reference(sg2ada_snapshot, fixtures, network, npz_name):
    npz = np.load(fixtures / npz_name)
    _assert_same_arrays(sg2ada_snapshot[network].state_dict(), _npz_group(npz, "param/"))


@pytest.mark.parametrize("network, npz_name", [("G_ema", "sg2ada_G_res64.npz"), ("D", "sg2ada_D_res64.npz")])
def test_sg2ada_init_kwargs_match_reference(sg2ada_snapshot, fixtures, network, npz_name):
    expected = json.loads(str(np.load(fixtures / npz_name)["meta"]))["init_kwargs"]
    init_kwargs = sg2ada_snapshot[network].init_kwargs
    assert type(init_kwargs) is dict
    # JSON turns tuples into lists, so compare through the same round trip.
    assert {key: json.loads(json.dumps(init_kwargs[key])) for key in expected} == expected


def test_sg2ada_state_dict_order_is_parameters_then_buffers(sg2ada_snapshot):
    state = sg2ada_snapshot["G_ema"].state_dict()
    names = list(state)
    first_buffer = names.index("synthesis.b4.resample_filter")
    assert "mapping.w_avg" in names[first_buffer:]
    assert all(not name.endswith(("resample_filter", "noise_const", "w_avg")) for name in names[:first_buffer])
    assert all(array.flags.c_contiguous for array in state.values())


def test_rosinality_zip_checkpoint(fixtures):
    checkpoint = load_torch_file(fixtures / "rosinality_G_res64.pt")
    npz = np.load(fixtures / "rosinality_G_res64.npz")
    assert set(checkpoint) == {"g_ema", "latent_avg"}
    _assert_same_arrays(checkpoint["g_ema"], _npz_group(npz, "g_ema/"))
    _assert_same_arrays({"latent_avg": checkpoint["latent_avg"]}, {"latent_avg": npz["latent_avg"]})


def test_lpips_linear_weights_legacy_format(fixtures):
    weights = load_torch_file(fixtures / "lpips_v0.1_vgg_lin.pth")
    assert list(weights) == [f"lin{k}.model.1.weight" for k in range(5)]
    for k, channels in enumerate([64, 128, 256, 512, 512]):
        array = weights[f"lin{k}.model.1.weight"]
        assert array.dtype == np.float32 and array.shape == (1, channels, 1, 1)
        assert np.all(np.isfinite(array)) and np.all(array >= 0)  # the released weights are clamped to >= 0


def test_vgg16_trunk_fp16_legacy_format(fixtures):
    weights = load_torch_file(fixtures / "vgg16_random_trunk_fp16.pth")
    layers = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    assert set(weights) == {f"features.{n}.{kind}" for n in layers for kind in ("weight", "bias")}
    assert weights["features.0.weight"].shape == (64, 3, 3, 3)
    assert weights["features.28.weight"].shape == (512, 512, 3, 3)
    for array in weights.values():
        assert array.dtype == np.float16 and array.flags.c_contiguous
        assert np.all(np.isfinite(array)) and np.any(array != 0)


def test_pix2pixhd_generator_legacy_format(fixtures):
    weights = load_torch_file(fixtures / "pix2pixhd_small_latest_net_G.pth")
    _assert_same_arrays(weights, _npz_group(np.load(fixtures / "pix2pixhd_small.npz"), "G/"))


@pytest.mark.parametrize("model", [0, 1, 2])
def test_editgan_classifiers(fixtures, model):
    checkpoint = load_torch_file(fixtures / "editgan_classifiers_res64" / f"model_{model}.pth")
    assert set(checkpoint) == {"model_state_dict"}
    # The trainer saved a DataParallel wrapper, hence the "module." prefix.
    weights = {name.removeprefix("module."): array for name, array in checkpoint["model_state_dict"].items()}
    expected = _npz_group(np.load(fixtures / "editgan_segbranch_res64.npz"), f"classifier{model}/")
    _assert_same_arrays(weights, expected)
    assert weights["layers.2.num_batches_tracked"].dtype == np.int64


# --------------------------------------------------------------------------------------------
# Hand-written pickles.  torch is not available, so files that name torch globals are written
# opcode by opcode (protocol 2) from these markers.
# --------------------------------------------------------------------------------------------

class _Global:
    def __init__(self, module, name):
        self.module, self.name = module, name


class _Call:
    def __init__(self, function, *args):
        self.function, self.args = function, args


class _PersistentId:
    def __init__(self, pid):
        self.pid = pid


def _opcodes(value) -> bytes:
    if isinstance(value, _Global):
        return f"c{value.module}\n{value.name}\n".encode()
    if isinstance(value, _Call):
        return _opcodes(value.function) + _opcodes(value.args) + pickle.REDUCE
    if isinstance(value, _PersistentId):
        return _opcodes(value.pid) + pickle.BINPERSID
    if isinstance(value, tuple):
        return pickle.MARK + b"".join(map(_opcodes, value)) + pickle.TUPLE
    if isinstance(value, dict):
        items = b"".join(_opcodes(key) + _opcodes(item) for key, item in value.items())
        return pickle.EMPTY_DICT + pickle.MARK + items + pickle.SETITEMS
    return pickle.dumps(value, protocol=2)[2:-1]  # a leaf: drop PROTO and STOP


def _pickle(value) -> bytes:
    return b"\x80\x02" + _opcodes(value) + pickle.STOP


def _tensor(pid, offset, size, stride):
    hooks = _Call(_Global("collections", "OrderedDict"))
    return _Call(_Global("torch._utils", "_rebuild_tensor_v2"), _PersistentId(pid), offset, size, stride, False, hooks)


def _legacy_pid(storage_type, key, numel):
    return ("storage", _Global("torch", storage_type), key, "cpu", numel, None)


def _zip_pid(storage_type, key, numel):
    return ("storage", _Global("torch", storage_type), key, "cpu", numel)


def _legacy_stream(object_pickle: bytes, storages: dict) -> bytes:
    """A non-zip torch.save stream; ``storages`` maps key -> 1-D array, written in key order."""
    sys_info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 8}}
    parts = [
        pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2),
        pickle.dumps(1001, protocol=2),
        pickle.dumps(sys_info, protocol=2),
        object_pickle,
        pickle.dumps(list(storages), protocol=2),
    ]
    for array in storages.values():
        parts += [struct.pack("<q", array.size), array.tobytes()]
    return b"".join(parts)


def _zip_archive(object_pickle: bytes, storages: dict, folder: str = "archive") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{folder}/data.pkl", object_pickle)
        archive.writestr(f"{folder}/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"{folder}/data/{key}", array.tobytes())
        archive.writestr(f"{folder}/version", "3\n")
    return buffer.getvalue()


def _write(tmp_path, name, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


STORAGE = np.arange(12, dtype=np.float32) * 1.5


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_strided_views_shared_storages_and_dtypes(tmp_path, layout):
    pid = _zip_pid if layout == "zip" else _legacy_pid
    wrap = _zip_archive if layout == "zip" else _legacy_stream
    halves = np.array([1.5, -2.25, 3.0], dtype=ml_dtypes.bfloat16)
    flags = np.array([True, False, True])
    document = {
        "transposed": _tensor(pid("FloatStorage", "0", 12), 1, (3, 2), (1, 3)),
        "broadcast": _tensor(pid("FloatStorage", "0", 12), 4, (2, 3), (0, 1)),
        "scalar": _tensor(pid("FloatStorage", "0", 12), 11, (), ()),
        "empty": _tensor(pid("FloatStorage", "0", 12), 0, (0, 5), (5, 1)),
        "bf16": _tensor(pid("BFloat16Storage", "1", 3), 0, (3,), (1,)),
        "flags": _tensor(pid("BoolStorage", "2", 3), 0, (3,), (1,)),
        "meta": (1, 2.5, "text", [None, True]),
    }
    path = _write(tmp_path, f"strided.{layout}", wrap(_pickle(document), {"0": STORAGE, "1": halves, "2": flags}))
    loaded = load_torch_file(path)
    expected = {
        "transposed": np.lib.stride_tricks.as_strided(STORAGE[1:], (3, 2), (4, 12)),
        "broadcast": np.broadcast_to(STORAGE[4:7], (2, 3)),
        "scalar": np.array(STORAGE[11]),
        "empty": np.zeros((0, 5), np.float32),
        "bf16": halves,
        "flags": flags,
    }
    for key, want in expected.items():
        assert loaded[key].dtype == want.dtype and loaded[key].shape == want.shape, key
        assert np.array_equal(loaded[key], want) and loaded[key].flags.c_contiguous, key
    assert loaded["meta"] == (1, 2.5, "text", [None, True])


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_tensor_reading_past_its_storage_is_refused(tmp_path, layout):
    pid = _zip_pid if layout == "zip" else _legacy_pid
    wrap = _zip_archive if layout == "zip" else _legacy_stream
    document = {"w": _tensor(pid("FloatStorage", "0", 12), 2, (4, 4), (4, 1))}
    path = _write(tmp_path, "overrun.pt", wrap(_pickle(document), {"0": STORAGE}))
    with pytest.raises(CheckpointError, match="past the end of its storage"):
        load_torch_file(path)


def test_legacy_storage_views(tmp_path):
    # torch < 0.4 could refer to a slice of a root storage: (view key, offset, size) as the last pid item.
    pid = ("storage", _Global("torch", "FloatStorage"), "0", "cuda:0", 12, ("view", 2, 6))
    path = _write(tmp_path, "view.pth", _legacy_stream(_pickle(_tensor(pid, 1, (5,), (1,))), {"0": STORAGE}))
    assert np.array_equal(load_torch_file(path), STORAGE[3:8])


def test_numpy_values_and_stdlib_containers(tmp_path):
    document = {
        "array": np.arange(6, dtype=np.int16).reshape(2, 3),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "scalar": np.float64(0.125),
        "flag": np.True_,
        "dtype": np.dtype(">i4"),
        "args": argparse.Namespace(lr=0.002, size=64),
        "kinds": {"a", "b"},
        "frozen": frozenset({1}),
    }
    for protocol in (2, 4):
        data = pickle.dumps(document, protocol=protocol)
        loaded = load_network_pickle(_write(tmp_path, f"numpy{protocol}.pkl", data))
        assert loaded["array"].dtype == np.int16 and np.array_equal(loaded["array"], document["array"])
        assert np.array_equal(loaded["fortran"], document["fortran"]) and loaded["fortran"].flags.c_contiguous
        assert loaded["scalar"] == 0.125 and loaded["scalar"].dtype == np.float64
        assert loaded["flag"] is np.True_
        assert loaded["dtype"] == np.dtype(">i4")
        assert (loaded["args"].lr, loaded["args"].size) == (0.002, 64)
        assert loaded["kinds"] == {"a", "b"} and loaded["frozen"] == frozenset({1})
    # Pickles written under numpy 1.x name numpy.core instead of numpy._core.
    old_spelling = pickle.dumps(document["array"], protocol=2).replace(b"numpy._core", b"numpy.core")
    assert np.array_equal(load_network_pickle(_write(tmp_path, "np1.pkl", old_spelling)), document["array"])


def test_object_arrays_are_refused(tmp_path):
    path = _write(tmp_path, "objects.pkl", pickle.dumps(np.array([1, "x"], dtype=object), protocol=2))
    with pytest.raises(CheckpointError, match="not a plain numeric dtype"):
        load_network_pickle(path)


def test_tf_network_becomes_a_stub(tmp_path):
    weight = np.arange(4, dtype=np.float32).reshape(2, 2)
    state = {"version": 4, "name": "G", "build_module_src": "raise SystemExit('executed')", "variables": [("w", weight)]}
    # NEWOBJ + BUILD is how Python pickles a plain object with __getstate__.
    data = b"\x80\x02" + _opcodes(_Global("dnnlib.tflib.network", "Network")) + pickle.EMPTY_TUPLE + pickle.NEWOBJ
    data += _opcodes(state) + pickle.BUILD + pickle.STOP
    loaded = load_network_pickle(_write(tmp_path, "tf.pkl", data))
    assert isinstance(loaded, TFNetworkStub) and loaded.name == "G"
    [(name, array)] = loaded["variables"]
    assert name == "w" and array.dtype == np.float32 and np.array_equal(array, weight)


# --------------------------------------------------------------------------------------------
# Hostile files
# --------------------------------------------------------------------------------------------

class _SystemCall:
    """Pickles as a call of os.system, which Python writes as the global posix.system."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _write_marker_code(marker: Path) -> str:
    return f"__import__('pathlib').Path({str(marker)!r}).write_text('executed')"


def _payloads(marker: Path):
    """(pickle bytes, the global it must be refused for) per hostile payload."""
    return {
        "os.system": (pickle.dumps({"w": _SystemCall(f"touch {marker}")}, protocol=2), f"{os.system.__module__}.system"),
        "eval": (_pickle(_Call(_Global("builtins", "eval"), _write_marker_code(marker))), "builtins.eval"),
        "exec": (_pickle(_Call(_Global("builtins", "exec"), _write_marker_code(marker))), "builtins.exec"),
        "unknown class": (_pickle({"net": _Call(_Global("some.module", "Thing"))}), "some.module.Thing"),
        "nn.Module": (_pickle(_Call(_Global("torch.nn.modules.conv", "Conv2d"))), "torch.nn.modules.conv.Conv2d"),
    }


def _wrapped(payload: bytes, wrapper: str):
    """The payload as a file of the given kind, and the loader for it."""
    if wrapper == "network pickle":
        return payload, load_network_pickle
    if wrapper == "torch zip":
        return _zip_archive(payload, {}), load_torch_file
    if wrapper == "legacy torch.save":
        return _legacy_stream(payload, {}), load_torch_file
    # A network pickle whose embedded storage stream carries the payload.
    inner = _legacy_stream(payload, {})
    return _pickle({"w": _Call(_Global("torch.storage", "_load_from_bytes"), inner)}), load_network_pickle


@pytest.mark.parametrize("wrapper", ["network pickle", "torch zip", "legacy torch.save", "embedded storage"])
@pytest.mark.parametrize("payload", ["os.system", "eval", "exec", "unknown class", "nn.Module"])
def test_hostile_globals_are_refused(tmp_path, payload, wrapper):
    marker = tmp_path / "marker"
    data, refused_global = _payloads(marker)[payload]
    content, loader = _wrapped(data, wrapper)
    path = _write(tmp_path, "hostile.bin", content)
    with pytest.raises(UnsafeCheckpointError) as caught:
        loader(path)
    message = str(caught.value)
    assert f"'{refused_global}'" in message and str(path) in message and "\n" not in message
    if payload == "nn.Module":
        assert "state_dict" in message
    assert not marker.exists()


def test_payloads_are_live_under_plain_pickle(tmp_path):
    """Control for the test above: without the reader's allow-list these payloads do run."""
    for payload in ("os.system", "eval", "exec"):
        marker = tmp_path / f"marker-{payload}"
        pickle.loads(_payloads(marker)[payload][0])
        assert marker.exists(), payload


@pytest.mark.parametrize(
    "target, state",
    [
        # BUILD with a plain state writes the instance __dict__; with a (None, slots) state it calls setattr.
        (_Global("torch", "FloatStorage"), {"dtype": "<f8"}),
        (_Global("torch", "FloatStorage"), (None, {"dtype": "<f8"})),
        (_Global("dnnlib.util", "EasyDict"), (None, {"__getattr__": _Global("builtins", "set")})),
        (_Global("numpy", "dtype"), (None, {"__setstate__": _Global("builtins", "set")})),
    ],
)
def test_a_file_cannot_modify_the_stubs(tmp_path, target, state):
    hostile = b"\x80\x02" + _opcodes(target) + _opcodes(state) + pickle.BUILD + pickle.STOP
    with pytest.raises(CheckpointError):
        load_network_pickle(_write(tmp_path, "modify.pkl", hostile))
    # The stubs still behave for the next file.
    document = {"w": _tensor(_zip_pid("FloatStorage", "0", 12), 0, (12,), (1,)), "kwargs": _Call(_Global("dnnlib.util", "EasyDict"), {"a": 1})}
    loaded = load_torch_file(_write(tmp_path, "next.pt", _zip_archive(_pickle(document), {"0": STORAGE})))
    assert loaded["w"].dtype == np.float32 and np.array_equal(loaded["w"], STORAGE)
    assert loaded["kwargs"].a == 1


def _persistent_object(module_src: str, state: dict):
    meta = {"type": "class", "version": 6, "module_src": module_src, "class_name": "Evil", "state": state}
    return _Call(_Global("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)


def test_persistent_object_source_is_never_executed(tmp_path):
    marker = tmp_path / "marker"
    storage = _legacy_stream(_pickle(_PersistentId(_legacy_pid("FloatStorage", "k", 12))), {"k": STORAGE})
    weight = _Call(
        _Global("torch._utils", "_rebuild_parameter"),
        _tensor_from_bytes(storage, 0, (3, 4), (4, 1)),
        False,
        _Call(_Global("collections", "OrderedDict")),
    )
    state = {"_parameters": {"weight": weight, "bias": None}, "_buffers": {}, "_modules": {}}
    path = _write(tmp_path, "evil.pkl", _pickle({"G": _persistent_object(_write_marker_code(marker), state)}))
    loaded = load_network_pickle(path)["G"]
    assert isinstance(loaded, PersistentObject) and loaded.class_name == "Evil"
    assert list(loaded.state_dict()) == ["weight"]
    assert np.array_equal(loaded.state_dict()["weight"], STORAGE.reshape(3, 4))
    assert loaded.init_kwargs == {}
    assert not marker.exists()


def _tensor_from_bytes(legacy_stream: bytes, offset, size, stride):
    storage = _Call(_Global("torch.storage", "_load_from_bytes"), legacy_stream)
    hooks = _Call(_Global("collections", "OrderedDict"))
    return _Call(_Global("torch._utils", "_rebuild_tensor_v2"), storage, offset, size, stride, False, hooks)


@pytest.mark.parametrize("meta_change, message", [({"type": "function"}, "type 'function'"), ({"version": 7}, "version 7")])
def test_unknown_persistent_objects_are_refused(tmp_path, meta_change, message):
    meta = {"type": "class", "version": 6, "module_src": "", "class_name": "G", "state": {}, **meta_change}
    call = _Call(_Global("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)
    with pytest.raises(CheckpointError, match=message):
        load_network_pickle(_write(tmp_path, "odd.pkl", _pickle(call)))


def test_network_only_globals_are_refused_in_torch_files(tmp_path):
    path = _write(tmp_path, "persistent.pt", _zip_archive(_pickle(_persistent_object("", {})), {}))
    with pytest.raises(UnsafeCheckpointError, match="torch_utils.persistence._reconstruct_persistent_obj"):
        load_torch_file(path)


# --------------------------------------------------------------------------------------------
# Wrong kinds of file, corrupt and truncated files
# --------------------------------------------------------------------------------------------

def test_wrong_loader_says_what_the_file_is(fixtures):
    with pytest.raises(CheckpointError, match="plain pickle.*load_network_pickle"):
        load_torch_file(fixtures / "sg2ada_res64.pkl")
    with pytest.raises(CheckpointError, match="zip archive.*load_torch_file"):
        load_network_pickle(fixtures / "rosinality_G_res64.pt")
    with pytest.raises(CheckpointError, match="legacy torch.save.*load_torch_file"):
        load_network_pickle(fixtures / "lpips_v0.1_vgg_lin.pth")


def _first_half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _zero_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(64) + data[middle + 64 :]


def _random_bytes(_data: bytes) -> bytes:
    return np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()


# case -> (fixture the damaged file is made from, how it is damaged, the loader that must refuse it)
_DAMAGE = {
    "pkl half": ("sg2ada_res64.pkl", _first_half, load_network_pickle),
    "pt half": ("rosinality_G_res64.pt", _first_half, load_torch_file),
    "pt zeroed middle": ("rosinality_G_res64.pt", _zero_middle, load_torch_file),
    "legacy half": ("pix2pixhd_small_latest_net_G.pth", _first_half, load_torch_file),
    "legacy last byte missing": ("pix2pixhd_small_latest_net_G.pth", lambda data: data[:-1], load_torch_file),
    "legacy header only": ("pix2pixhd_small_latest_net_G.pth", lambda data: data[:100], load_torch_file),
    "random bytes as torch file": (None, _random_bytes, load_torch_file),
    "random bytes as network pickle": (None, _random_bytes, load_network_pickle),
    "empty torch file": (None, lambda data: b"", load_torch_file),
    "empty network pickle": (None, lambda data: b"", load_network_pickle),
}


@pytest.mark.parametrize("case", list(_DAMAGE))
def test_damaged_files_raise_checkpoint_error(tmp_path, fixtures, case):
    source, damage, loader = _DAMAGE[case]
    path = _write(tmp_path, "damaged.bin", damage((fixtures / source).read_bytes() if source else b""))
    with pytest.raises(CheckpointError) as caught:
        loader(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_storage_shorter_than_numel(tmp_path):
    stream = _legacy_stream(_pickle({"w": _tensor(_legacy_pid("FloatStorage", "0", 12), 0, (12,), (1,))}), {"0": STORAGE})
    with pytest.raises(CheckpointError, match="shorter than its 12 elements"):
        load_torch_file(_write(tmp_path, "short.pth", stream[:-4]))
    archive = _zip_archive(_pickle({"w": _tensor(_zip_pid("FloatStorage", "0", 12), 0, (12,), (1,))}), {"0": STORAGE[:11]})
    with pytest.raises(CheckpointError, match="shorter than its 12 elements"):
        load_torch_file(_write(tmp_path, "short.pt", archive))
