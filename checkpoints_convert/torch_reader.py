"""Read PyTorch checkpoint files with the standard library and numpy only, never running their code.

It follows the .pkl format of stylegan2-ada-pytorch (``persistent_class`` and ``_reconstruct_persistent_obj`` in
``torch_utils/persistence.py``, ``load_network_pkl`` in ``legacy.py``; NVlabs/stylegan2-ada-pytorch@d72cc7d) and
PyTorch's tensor pickling (``torch._utils._rebuild_tensor_v2``, ``torch.storage._load_from_bytes``), and implements:

* ``load_torch_file`` reads ``torch.save`` files in both on-disk layouts: the zip archive written by
  torch >= 1.6 (``<folder>/data.pkl`` plus one ``<folder>/data/<key>`` record per storage) and the
  older non-zip stream (magic number, protocol 1001, sys_info, the object pickle, the storage-key
  list, then per storage an int64 element count and the raw little-endian bytes).
* ``load_network_pickle`` reads the plain pickles written by stylegan2-ada-pytorch, stylegan3 and
  DragGAN (and the TF-era ``dnnlib.tflib.network.Network`` pickles).  Their persistent classes
  become ``PersistentObject`` records; the embedded module source is hashed, never executed.

Every pickle goes through ``_RestrictedUnpickler``: ``find_class`` hands out local stubs for an
explicit allow-list of globals and raises ``UnsafeCheckpointError`` for anything else, so a file
can at most describe data, not call arbitrary functions.  Tensors come back as contiguous numpy
arrays; any problem with a file surfaces as a one-line ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import io
import os
import pickle
import pickletools
import struct
import types
import typing
import zipfile

import ml_dtypes
import numpy as np

__all__ = [
    "CheckpointError",
    "UnsafeCheckpointError",
    "EasyDict",
    "TFNetworkStub",
    "PersistentObject",
    "load_torch_file",
    "load_network_pickle",
    "sniff_format",
    "zip_first_string",
    "STORAGE_CLASS_DTYPES",
    "ZIP_PICKLE",
    "ZIP_STORAGE_DIR",
    "ZIP_BYTEORDER",
]


class CheckpointError(ValueError):
    """A file is corrupt, truncated, of an unsupported kind, or not what the caller expected."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle asked for a global that is not on the allow-list."""


# --------------------------------------------------------------------------------------------
# Stand-ins for the objects the files describe
# --------------------------------------------------------------------------------------------

class _Sealed(type):
    """Metaclass of the stub classes a pickle can name.

    BUILD with a "slot state" calls setattr on whatever object is on the stack, the class itself
    included.  Sealing keeps one hostile file from changing how the stubs behave for every later
    file (for instance replacing EasyDict.__getattr__).  Stub instances that are shared between
    files are immutable for the same reason; the stub functions have nothing BUILD could usefully
    change (their __code__ needs a code object, which no allowed global produces).
    """

    def __setattr__(cls, name, value):
        raise CheckpointError(f"the file tried to modify the class {cls.__name__}")

    def __delattr__(cls, name):
        raise CheckpointError(f"the file tried to modify the class {cls.__name__}")


class EasyDict(dict, metaclass=_Sealed):
    """Local stand-in for ``dnnlib.util.EasyDict``: a dict whose items are also attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def __delattr__(self, name):
        del self[name]


class TFNetworkStub(EasyDict):
    """Stand-in for a TF-era ``dnnlib.tflib.network.Network``.

    The real class ``exec``s ``build_module_src`` in ``__setstate__``; this one only keeps the
    pickled state (``name``, ``static_kwargs``, ``components``, ``variables``, ...) as dict items.
    """

    def __setstate__(self, state):
        if not isinstance(state, dict):
            raise CheckpointError("a TF Network's pickled state is not a dict")
        self.clear()
        self.update(state)


@dataclasses.dataclass
class PersistentObject:
    """Stand-in for a stylegan2-ada ``torch_utils.persistence`` object; its module source is NEVER executed."""

    class_name: str
    module_src_sha256: str
    state: dict = dataclasses.field(repr=False)

    @property
    def init_kwargs(self) -> dict:
        """The constructor keyword arguments (``state['_init_kwargs']``) as plain nested dicts; {} if absent."""
        return _plain(self.state.get("_init_kwargs") or {})

    def state_dict(self) -> dict[str, np.ndarray]:
        """Tensors under torch-style dotted names, in ``named_parameters()`` then ``named_buffers()`` order."""
        parameters: dict[str, np.ndarray] = {}
        buffers: dict[str, np.ndarray] = {}
        self._collect_tensors("", parameters, buffers)
        return {**parameters, **buffers}

    def _collect_tensors(self, prefix, parameters, buffers):
        # Pre-order over _modules, like torch's named_modules(); None entries are unset slots.
        for table, into in (("_parameters", parameters), ("_buffers", buffers)):
            for name, value in (self.state.get(table) or {}).items():
                if value is not None:
                    into[prefix + name] = value
        for name, child in (self.state.get("_modules") or {}).items():
            if child is None:
                continue
            if not isinstance(child, PersistentObject):
                raise CheckpointError(
                    f"submodule {prefix + name!r} of {self.class_name} is a {type(child).__name__}, "
                    "not a persistent object"
                )
            child._collect_tensors(f"{prefix}{name}.", parameters, buffers)


def _plain(value):
    """Copy nested dict subclasses (EasyDict, OrderedDict) into plain dicts, recursing into lists and tuples."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    return value


# --------------------------------------------------------------------------------------------
# torch stubs
# --------------------------------------------------------------------------------------------

class _StorageType(typing.NamedTuple):
    """What ``torch.FloatStorage`` & co. stand for: only the element type of a storage.

    A named tuple because the instances are shared by all files and BUILD cannot modify a tuple
    (a frozen slotted dataclass would not do: its generated __setstate__ bypasses the freeze).
    """

    dtype: np.dtype


# The typed storage classes of module `torch` and their element types (shared with torch_writer).
STORAGE_CLASS_DTYPES = {
    name: np.dtype(dtype)
    for name, dtype in [
        ("FloatStorage", "<f4"),
        ("DoubleStorage", "<f8"),
        ("HalfStorage", "<f2"),
        ("BFloat16Storage", ml_dtypes.bfloat16),
        ("LongStorage", "<i8"),
        ("IntStorage", "<i4"),
        ("ShortStorage", "<i2"),
        ("CharStorage", "i1"),
        ("ByteStorage", "u1"),
        ("BoolStorage", "?"),
    ]
}
_STORAGE_TYPES = {name: _StorageType(dtype) for name, dtype in STORAGE_CLASS_DTYPES.items()}
# torch.save of a bare untyped storage names this class; its elements are bytes.
_UNTYPED_STORAGE = _StorageType(np.dtype("u1"))


def _check_int_tuple(value, what):
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) for v in value):
        raise CheckpointError(f"tensor {what} {value!r} is not a tuple of integers")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride):
    """``torch._utils._rebuild_tensor``: a contiguous copy of ``storage.as_strided(size, stride, offset)``."""
    if not isinstance(storage, np.ndarray) or storage.ndim != 1:
        raise CheckpointError("a tensor was built from something that is not a storage")
    size = _check_int_tuple(size, "size")
    stride = _check_int_tuple(stride, "stride")
    if not isinstance(storage_offset, int) or storage_offset < 0:
        raise CheckpointError(f"tensor storage offset {storage_offset!r} is invalid")
    if len(size) != len(stride) or any(n < 0 for n in size) or any(s < 0 for s in stride):
        raise CheckpointError(f"tensor size {size} and stride {stride} do not fit together")
    if 0 in size:
        return np.zeros(size, storage.dtype)
    # as_strided does no bounds checking, so the farthest element must be checked here.
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.size:
        raise CheckpointError(
            f"tensor of size {size} at offset {storage_offset} reads past the end of its "
            f"storage ({storage.size} elements)"
        )
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:],
        shape=size,
        strides=[s * storage.itemsize for s in stride],
        writeable=False,
    )
    return np.array(view, order="C")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None):
    """``torch._utils._rebuild_tensor_v2``; autograd flags, hooks and python attributes are dropped."""
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks):
    """``torch._utils._rebuild_parameter``: an nn.Parameter is just its data here."""
    return data


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    """``torch._utils._rebuild_parameter_with_state``: extra attributes of Parameter subclasses are dropped."""
    return data


# --------------------------------------------------------------------------------------------
# numpy stubs.  numpy's own __setstate__ would accept any state (turning a float dtype into an
# object dtype, for instance), so dtypes and arrays are first built as placeholders that check
# their state, and ``_finish_placeholders`` swaps them for real numpy objects after loading.
# --------------------------------------------------------------------------------------------

_PLAIN_DTYPE_KINDS = "biufc"  # bool, signed, unsigned, float, complex: no objects, no structs


def _plain_dtype(dtype) -> np.dtype:
    if not isinstance(dtype, np.dtype) or dtype.kind not in _PLAIN_DTYPE_KINDS or dtype.fields or dtype.subdtype:
        raise CheckpointError(f"numpy dtype {dtype!r} is not a plain numeric dtype")
    return dtype


class _PickledDtype(metaclass=_Sealed):
    """``numpy.dtype(name, align, copy)`` followed by a checked ``__setstate__`` (byte order only)."""

    def __init__(self, name, align=False, copy=True):
        if not isinstance(name, str):
            raise CheckpointError(f"numpy dtype name {name!r} is not a string")
        self.dtype = _plain_dtype(np.dtype(name))

    def __setstate__(self, state):
        # (version, byte order, subarray, names, fields, elsize, alignment, flags); plain dtypes
        # have no subarray, names or fields.
        if not isinstance(state, tuple) or len(state) < 5 or state[2:5] != (None, None, None):
            raise CheckpointError(f"numpy dtype state {state!r} is not that of a plain numeric dtype")
        if state[1] in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(state[1])


def _as_dtype(value) -> np.dtype:
    if not isinstance(value, _PickledDtype):
        raise CheckpointError(f"expected a numpy dtype, got {type(value).__name__}")
    return value.dtype


def _numpy_scalar(dtype, data):
    """``numpy.core.multiarray.scalar``: one numeric value from its raw bytes."""
    dtype = _as_dtype(dtype)
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise CheckpointError(f"numpy scalar of dtype {dtype} has malformed data")
    return np.frombuffer(data, dtype)[0]


class _NdarrayClass:
    """What ``numpy.ndarray`` stands for: only valid as the first argument of ``_reconstruct``."""

    __slots__ = ()


_NDARRAY_CLASS = _NdarrayClass()


class _PickledArray(metaclass=_Sealed):
    """``numpy.core.multiarray._reconstruct(ndarray, ...)`` followed by a checked ``__setstate__``."""

    def __init__(self, cls, shape, typecode):
        if cls is not _NDARRAY_CLASS:
            raise CheckpointError("numpy _reconstruct was asked for something other than a plain ndarray")
        self.array = None

    def __setstate__(self, state):
        # (version, shape, dtype, is_fortran, raw bytes); very old numpy omitted the version.
        if isinstance(state, tuple) and len(state) == 4:
            state = (0, *state)
        if not isinstance(state, tuple) or len(state) != 5:
            raise CheckpointError("numpy array state has an unexpected layout")
        _version, shape, dtype, is_fortran, data = state
        dtype = _as_dtype(dtype)
        shape = _check_int_tuple(shape, "shape")
        if not isinstance(data, bytes) or any(n < 0 for n in shape):
            raise CheckpointError("numpy array state has no raw data")
        if len(data) != int(np.prod(shape, dtype=object)) * dtype.itemsize:
            raise CheckpointError(f"numpy array of shape {shape} and dtype {dtype} has {len(data)} bytes of data")
        array = np.frombuffer(data, dtype).reshape(shape, order="F" if is_fortran else "C")
        self.array = np.array(array, order="C")

    def finish(self) -> np.ndarray:
        if self.array is None:
            raise CheckpointError("numpy array was never given its data")
        return self.array


def _finish_placeholders(value, done=None):
    """Replace numpy placeholders by real arrays and dtypes throughout a loaded object graph."""
    if done is None:
        done = {}  # id -> (original, replacement); holding the original keeps its id from being reused
    key = id(value)
    if key in done:
        return done[key][1]
    if isinstance(value, _PickledArray):
        result = value.finish()
    elif isinstance(value, _PickledDtype):
        result = value.dtype
    elif isinstance(value, tuple):
        result = tuple(_finish_placeholders(item, done) for item in value)
    else:
        result = value
        done[key] = (value, value)  # registered before recursing: mutable containers may be cyclic
        if isinstance(value, list):
            value[:] = [_finish_placeholders(item, done) for item in value]
        elif isinstance(value, dict):
            for name, item in value.items():
                value[name] = _finish_placeholders(item, done)
        elif isinstance(value, PersistentObject):
            _finish_placeholders(value.state, done)
        elif isinstance(value, types.SimpleNamespace):
            _finish_placeholders(vars(value), done)
    done[key] = (value, result)
    return result


# --------------------------------------------------------------------------------------------
# Other stubs
# --------------------------------------------------------------------------------------------

def _codecs_encode(text, encoding):
    """``_codecs.encode``: protocol-2 pickles spell ``bytes`` as ``encode(str, 'latin1')``."""
    if not isinstance(text, str) or encoding != "latin1":
        raise CheckpointError(f"_codecs.encode is only accepted for latin1 text, not {encoding!r}")
    return text.encode("latin1")


_PERSISTENCE_VERSIONS = {6}  # torch_utils/persistence.py `_version` in ada, stylegan3 and DragGAN


def _reconstruct_persistent_obj(meta):
    """``torch_utils.persistence._reconstruct_persistent_obj``: record the object, hash (never run) its source."""
    if not isinstance(meta, dict):
        raise CheckpointError("persistent object metadata is not a dict")
    if meta.get("type") != "class":
        raise CheckpointError(f"persistent object of type {meta.get('type')!r} is not supported (only 'class')")
    if meta.get("version") not in _PERSISTENCE_VERSIONS:
        raise CheckpointError(f"persistent object version {meta.get('version')!r} is not supported")
    module_src, class_name, state = meta.get("module_src"), meta.get("class_name"), meta.get("state")
    if not isinstance(module_src, str) or not isinstance(class_name, str) or not isinstance(state, dict):
        raise CheckpointError("persistent object metadata lacks module_src, class_name or state")
    return PersistentObject(
        class_name=class_name,
        module_src_sha256=hashlib.sha256(module_src.encode("utf-8")).hexdigest(),
        state=state,
    )


def _load_from_bytes(data):
    """``torch.storage._load_from_bytes``: a storage serialized as a legacy torch.save stream."""
    if not isinstance(data, bytes):
        raise CheckpointError("an embedded storage is not a bytes object")
    storage = _read_legacy_stream(io.BytesIO(data))
    if not isinstance(storage, np.ndarray):
        raise CheckpointError("an embedded torch.save stream does not hold a storage")
    return storage


# --------------------------------------------------------------------------------------------
# The allow-lists
# --------------------------------------------------------------------------------------------

_NUMPY_GLOBALS = {
    ("numpy", "dtype"): _PickledDtype,
    ("numpy", "ndarray"): _NDARRAY_CLASS,
}
for _core in ("numpy.core.multiarray", "numpy._core.multiarray"):  # numpy 1.x and 2.x spellings
    _NUMPY_GLOBALS[(_core, "scalar")] = _numpy_scalar
    _NUMPY_GLOBALS[(_core, "_reconstruct")] = _PickledArray

# Globals a torch.save file (and a storage stream embedded in a network pickle) may use.
_TORCH_FILE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    # Python 3 writes these two under their Python 2 names in protocol <= 2 (torch.save's default).
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch.storage", "UntypedStorage"): _UNTYPED_STORAGE,
    **{("torch", name): storage_type for name, storage_type in _STORAGE_TYPES.items()},
    ("dnnlib.util", "EasyDict"): EasyDict,
    ("dnnlib", "EasyDict"): EasyDict,
    ("argparse", "Namespace"): types.SimpleNamespace,  # rosinality training checkpoints store `args`
    **_NUMPY_GLOBALS,
}

# Network pickles additionally embed storages as bytes and reference persistent classes.
_NETWORK_PICKLE_GLOBALS = {
    **_TORCH_FILE_GLOBALS,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("dnnlib.tflib.network", "Network"): TFNetworkStub,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves globals only through an allow-list of local stubs."""

    def __init__(self, stream, allowed, persistent_load=None):
        super().__init__(stream, encoding="utf-8")
        self._allowed = allowed
        self._persistent_load = persistent_load

    def find_class(self, module, name):
        stub = self._allowed.get((module, name))
        if stub is None:
            message = f"global {f'{module}.{name}'!r} is not on the allow-list"
            if module.startswith("torch.nn.modules."):
                message += " (a whole pickled torch.nn.Module cannot be read safely; save its state_dict() instead)"
            raise UnsafeCheckpointError(message)
        return stub

    def persistent_load(self, pid):
        if self._persistent_load is None:
            raise CheckpointError("a plain pickle contains a persistent id (torch.save data outside a torch.save file)")
        return self._persistent_load(pid)


def _unpickle(stream, allowed, persistent_load=None):
    return _RestrictedUnpickler(stream, allowed, persistent_load).load()


# --------------------------------------------------------------------------------------------
# torch.save formats
# --------------------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_ZIP_MAGIC = b"PK\x03\x04"
# Records of the zip layout (torch/serialization.py `_save`, caffe2/serialize/inline_container.cc), all under one
# top-level folder: the object pickle, one record per storage (named by its key), the byte order.
ZIP_PICKLE = "data.pkl"
ZIP_STORAGE_DIR = "data/"
ZIP_BYTEORDER = "byteorder"


def _starts_with_legacy_magic(stream) -> bool:
    """Whether the first pickle in ``stream`` is exactly the legacy torch.save magic number.

    Only opcodes are inspected (nothing is built), so this is safe on any file and reads just a
    few bytes of a pickle that is something else.
    """
    values = []
    try:
        for opcode, arg, _position in pickletools.genops(stream):
            if opcode.name in ("PROTO", "FRAME", "STOP"):
                continue
            values.append(arg)
            if len(values) > 1:
                return False
    except ValueError:  # genops' way of reporting unknown opcodes and truncated data
        return False
    return values == [_LEGACY_MAGIC]


def _stream_size(stream) -> int:
    position = stream.tell()
    size = stream.seek(0, os.SEEK_END)
    stream.seek(position)
    return size


def _storage_type_of(pid):
    storage_type = pid[1]
    if not isinstance(storage_type, _StorageType):
        raise CheckpointError(f"storage type {storage_type!r} is not a torch storage class")
    return storage_type


def _read_legacy_stream(stream):
    """Read a non-zip torch.save stream from its current position to the end of its storages."""
    if not _starts_with_legacy_magic(stream):
        raise CheckpointError("not a legacy torch.save stream (magic number missing)")
    protocol = _unpickle(stream, {})
    if protocol != _LEGACY_PROTOCOL:
        raise CheckpointError(f"legacy torch.save protocol {protocol!r} is not supported (expected 1001)")
    sys_info = _unpickle(stream, {})
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise CheckpointError("big-endian torch.save files are not supported")
    stream_size = _stream_size(stream)
    object_start = stream.tell()

    # The storage bytes come after the object pickle, yet the object pickle alone says what type
    # and size each storage has.  So a first pass over the object pickle (on zero-filled storages)
    # learns the layout, the bytes are read, and a second pass builds the tensors from them.
    layout: dict[str, tuple[np.dtype, int]] = {}
    storages: dict[str, np.ndarray] = {}

    def storage_for(pid, root_storage):
        if not isinstance(pid, tuple) or not pid:
            raise CheckpointError(f"persistent id {pid!r} is malformed")
        if pid[0] == "module":
            raise CheckpointError("the file holds a whole pickled torch.nn.Module; save its state_dict() instead")
        if pid[0] != "storage" or len(pid) != 6:
            raise CheckpointError(f"persistent id of kind {pid[0]!r} is not supported")
        _, _, root_key, _location, numel, view = pid
        storage = root_storage(root_key, _storage_type_of(pid).dtype, numel)
        if view is None:
            return storage
        # Files from torch < 0.4 may refer to a slice of a root storage: (view key, offset, size).
        _view_key, offset, view_size = view
        if not all(isinstance(v, int) and v >= 0 for v in (offset, view_size)) or offset + view_size > storage.size:
            raise CheckpointError(f"storage view {view!r} lies outside its root storage")
        return storage[offset : offset + view_size]

    def record_layout(key, dtype, numel):
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise CheckpointError(f"storage key {key!r} or size {numel!r} is malformed")
        if numel * dtype.itemsize > stream_size:  # also keeps np.zeros from asking for absurd sizes
            raise CheckpointError(f"storage {key} claims {numel} elements, more than the file holds")
        if layout.setdefault(key, (dtype, numel)) != (dtype, numel):
            raise CheckpointError(f"storage {key} is referred to with two different types or sizes")
        return np.zeros(numel, dtype)

    def stored(key, dtype, numel):
        return storages[key]

    _unpickle(stream, _TORCH_FILE_GLOBALS, lambda pid: storage_for(pid, record_layout))
    keys = _unpickle(stream, {})
    if not isinstance(keys, list) or set(keys) != set(layout):
        raise CheckpointError("the storage-key list does not match the storages the data refers to")
    for key in keys:
        dtype, numel = layout[key]
        header = stream.read(8)
        if len(header) != 8:
            raise CheckpointError(f"file ends before storage {key} (truncated?)")
        (stored_numel,) = struct.unpack("<q", header)
        if stored_numel != numel:
            raise CheckpointError(f"storage {key} holds {stored_numel} elements, the data expects {numel}")
        data = stream.read(numel * dtype.itemsize)
        if len(data) != numel * dtype.itemsize:
            raise CheckpointError(
                f"storage {key} is shorter than its {numel} elements ({len(data)} of "
                f"{numel * dtype.itemsize} bytes; truncated?)"
            )
        storages[key] = np.frombuffer(data, dtype)
    end = stream.tell()
    stream.seek(object_start)
    result = _unpickle(stream, _TORCH_FILE_GLOBALS, lambda pid: storage_for(pid, stored))
    stream.seek(end)
    return result


def _read_zip_archive(stream):
    """Read a torch >= 1.6 zip archive: ``<folder>/data.pkl`` with storages in ``<folder>/data/<key>``."""
    with zipfile.ZipFile(stream) as archive:
        pickles = [name for name in archive.namelist() if name == ZIP_PICKLE or name.endswith("/" + ZIP_PICKLE)]
        if len(pickles) != 1:
            raise CheckpointError(f"zip archive has {len(pickles)} data.pkl records, a torch.save file has one")
        prefix = pickles[0][: -len(ZIP_PICKLE)]
        byteorder = f"{prefix}{ZIP_BYTEORDER}"
        if byteorder in archive.namelist() and archive.read(byteorder) != b"little":
            raise CheckpointError("big-endian torch.save files are not supported")
        storages: dict[str, np.ndarray] = {}

        def load_storage(pid):
            if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
                raise CheckpointError(f"persistent id {pid!r} is not a storage reference")
            _, _, key, _location, numel = pid
            dtype = _storage_type_of(pid).dtype
            if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
                raise CheckpointError(f"storage key {key!r} or size {numel!r} is malformed")
            if key not in storages:
                try:
                    data = archive.read(f"{prefix}{ZIP_STORAGE_DIR}{key}")
                except KeyError:
                    raise CheckpointError(f"storage record data/{key} is missing") from None
                if len(data) < numel * dtype.itemsize:
                    raise CheckpointError(f"storage data/{key} is shorter than its {numel} elements (truncated?)")
                storages[key] = np.frombuffer(data, dtype, count=numel)
            return storages[key]

        return _unpickle(io.BytesIO(archive.read(pickles[0])), _TORCH_FILE_GLOBALS, load_storage)


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

def _one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextlib.contextmanager
def _errors_naming(label):
    """Turn every failure while interpreting a file into a one-line CheckpointError naming it."""
    try:
        yield
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(_one_line(f"refusing to load {label}: {exc}")) from None
    except CheckpointError as exc:
        raise CheckpointError(_one_line(f"cannot read {label}: {exc}")) from None
    except Exception as exc:  # EOFError, UnpicklingError, BadZipFile, struct.error, ... from bad bytes
        raise CheckpointError(
            _one_line(f"cannot read {label}: corrupt or truncated file ({type(exc).__name__}: {exc})")
        ) from exc


def sniff_format(path) -> str:
    """'torch-zip', 'torch-legacy' (both torch.save files), 'pickle' (e.g. a network .pkl) or 'unknown'.

    Looks at the first bytes and opcodes only; nothing is unpickled.
    """
    with open(path, "rb") as stream:
        head = stream.read(len(_ZIP_MAGIC))
        stream.seek(0)
        if head == _ZIP_MAGIC:
            return "torch-zip"
        if head[:1] == b"\x80":
            return "torch-legacy" if _starts_with_legacy_magic(stream) else "pickle"
    return "unknown"


def zip_first_string(path) -> str | None:
    """The first string in the object pickle of a torch.save zip archive (a state dict's first key), or None.

    Walks the opcodes only (nothing is unpickled), so it can tell kinds of torch files apart by their bytes.
    """
    label = os.fspath(path)
    with open(path, "rb") as stream, _errors_naming(label):
        with zipfile.ZipFile(stream) as archive:
            pickles = [name for name in archive.namelist() if name == ZIP_PICKLE or name.endswith("/" + ZIP_PICKLE)]
            if len(pickles) != 1:
                return None
            for opcode, arg, _position in pickletools.genops(io.BytesIO(archive.read(pickles[0]))):
                if isinstance(arg, str) and "UNICODE" in opcode.name:
                    return arg
    return None


def load_torch_file(path) -> object:
    """Load a ``torch.save`` file (zip or legacy format) without torch and without running its code.

    Tensors come back as contiguous numpy arrays of the stored dtype and shape; dicts,
    OrderedDicts, lists, tuples and scalars come back as themselves.  Raises CheckpointError
    (UnsafeCheckpointError for a global outside the allow-list) for anything else.
    """
    label = os.fspath(path)
    with open(path, "rb") as stream, _errors_naming(label):
        head = stream.read(len(_ZIP_MAGIC))
        stream.seek(0)
        if not head:
            raise CheckpointError("the file is empty")
        if head == _ZIP_MAGIC:
            return _finish_placeholders(_read_zip_archive(stream))
        if _starts_with_legacy_magic(stream):
            stream.seek(0)
            return _finish_placeholders(_read_legacy_stream(stream))
        if head[:1] == b"\x80":
            raise CheckpointError(
                "this is a plain pickle (for example a StyleGAN network .pkl), not a torch.save file; "
                "use load_network_pickle()"
            )
        raise CheckpointError("unknown format: neither a torch.save zip archive nor a legacy torch.save stream")


def load_network_pickle(path) -> object:
    """Load a stylegan2-ada-pytorch / stylegan3 / DragGAN network pickle without running its code.

    Persistent classes become ``PersistentObject`` (module source hashed, never executed),
    embedded storages and parameters become numpy arrays, TF-era ``dnnlib.tflib.network.Network``
    objects become ``TFNetworkStub``.  Raises CheckpointError (UnsafeCheckpointError for a global
    outside the allow-list) for anything else.
    """
    label = os.fspath(path)
    with open(path, "rb") as stream, _errors_naming(label):
        head = stream.read(len(_ZIP_MAGIC))
        stream.seek(0)
        if not head:
            raise CheckpointError("the file is empty")
        if head == _ZIP_MAGIC:
            raise CheckpointError(
                "this is a torch.save zip archive (for example a rosinality .pt), not a network pickle; "
                "use load_torch_file()"
            )
        if _starts_with_legacy_magic(stream):
            raise CheckpointError("this is a legacy torch.save file, not a network pickle; use load_torch_file()")
        stream.seek(0)
        return _finish_placeholders(_unpickle(stream, _NETWORK_PICKLE_GLOBALS))
