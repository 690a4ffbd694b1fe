"""Write ``torch.save`` zip files of numpy arrays without torch, for ``torch.load(path, weights_only=True)``.

The inverse of ``torch_reader``'s zip branch, following PyTorch's writer (``_save`` and ``_legacy_save``'s
``persistent_id`` in ``torch/serialization.py``, ``PyTorchStreamWriter`` in ``caffe2/serialize/inline_container.cc``,
pytorch/pytorch v2.4): one top-level folder holding

* ``data.pkl``: the object, pickle protocol 2, each tensor as
  ``torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`` whose storage is the
  persistent id ``('storage', torch.FloatStorage, key, 'cpu', numel)`` (or the storage class of its dtype);
* ``.format_version`` ``1``, ``.storage_alignment`` ``64``, ``byteorder`` ``little``;
* ``data/<key>``: each storage's raw little-endian bytes, one contiguous tensor per storage;
* ``version`` ``3`` and ``.data/serialization_id``,

uncompressed, every record's data starting at a multiple of 64 bytes (a local-header extra field of id ``FB`` padded
with ``Z``, as ``PyTorchStreamWriter`` pads). The pickle is emitted opcode by opcode (``pickle``'s opcode constants)
instead of through ``pickle.Pickler``, which would need torch importable to name its globals; it only ever names
``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` and ``torch.<dtype>Storage``, all on the allow-list
of torch's weights-only unpickler (``torch/_weights_only_unpickler.py``) and of ``torch_reader``.

Values: dicts (``collections.OrderedDict`` stays one), str / int / float / bool / None keys and values, tuples,
lists, and numpy arrays of the dtypes in ``torch_reader.STORAGE_CLASS_DTYPES``.
"""

import collections
import hashlib
import io
import pickle
import struct
import zipfile

import numpy as np

from checkpoints_convert.torch_reader import STORAGE_CLASS_DTYPES, ZIP_BYTEORDER, ZIP_PICKLE, ZIP_STORAGE_DIR

__all__ = ["write_torch_file", "STORAGE_ALIGNMENT"]

STORAGE_ALIGNMENT = 64
_FORMAT_VERSION = b"1"
_VERSION = b"3\n"  # kProducedFileFormatVersion of torch.save archives
_CLASS_OF_DTYPE = {dtype: name for name, dtype in STORAGE_CLASS_DTYPES.items()}


class _PickleWriter:
    """Protocol-2 opcodes for the few value types a state dict holds (no memo: every global is spelled out)."""

    def __init__(self):
        self.out = io.BytesIO()
        self.storages: list[np.ndarray] = []

    def op(self, code: bytes, payload: bytes = b""):
        self.out.write(code + payload)

    def global_(self, module: str, name: str):
        self.op(pickle.GLOBAL, f"{module}\n{name}\n".encode("ascii"))

    def value(self, v):
        if isinstance(v, np.ndarray):
            self.tensor(v)
        elif isinstance(v, dict):
            self.mapping(v)
        elif isinstance(v, (tuple, list)):
            self.sequence(v)
        elif v is None:
            self.op(pickle.NONE)
        elif isinstance(v, (bool, np.bool_)):
            self.op(pickle.NEWTRUE if v else pickle.NEWFALSE)
        elif isinstance(v, (int, np.integer)):
            self.integer(int(v))
        elif isinstance(v, (float, np.floating)):
            self.op(pickle.BINFLOAT, struct.pack(">d", float(v)))
        elif isinstance(v, str):
            data = v.encode("utf-8")
            self.op(pickle.BINUNICODE, struct.pack("<I", len(data)) + data)
        else:
            raise TypeError(f"cannot write a {type(v).__name__} into a torch file")

    def integer(self, v: int):
        if 0 <= v < 256:
            self.op(pickle.BININT1, bytes([v]))
        elif 0 <= v < 65536:
            self.op(pickle.BININT2, struct.pack("<H", v))
        elif -2 ** 31 <= v < 2 ** 31:
            self.op(pickle.BININT, struct.pack("<i", v))
        else:
            data = v.to_bytes((v.bit_length() + 8) // 8, "little", signed=True)
            self.op(pickle.LONG1, bytes([len(data)]) + data)

    def sequence(self, items):
        if isinstance(items, list):
            self.op(pickle.EMPTY_LIST)
            if items:
                self.op(pickle.MARK)
                for item in items:
                    self.value(item)
                self.op(pickle.APPENDS)
            return
        self.op(pickle.MARK)
        for item in items:
            self.value(item)
        self.op(pickle.TUPLE)

    def empty_ordered_dict(self):
        self.global_("collections", "OrderedDict")
        self.op(pickle.EMPTY_TUPLE)
        self.op(pickle.REDUCE)

    def mapping(self, d: dict):
        if isinstance(d, collections.OrderedDict):
            self.empty_ordered_dict()
        else:
            self.op(pickle.EMPTY_DICT)
        if d:
            self.op(pickle.MARK)
            for key, item in d.items():
                self.value(key)
                self.value(item)
            self.op(pickle.SETITEMS)

    def tensor(self, array: np.ndarray):
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        storage_class = _CLASS_OF_DTYPE.get(np.dtype(dtype))
        if storage_class is None:
            raise TypeError(f"no torch storage type for numpy dtype {array.dtype}")
        key = str(len(self.storages))
        self.storages.append(np.ascontiguousarray(array, dtype=dtype))
        strides = tuple(int(np.prod(array.shape[i + 1:], dtype=np.int64)) for i in range(array.ndim))
        self.global_("torch._utils", "_rebuild_tensor_v2")
        self.op(pickle.MARK)
        self.op(pickle.MARK)  # the persistent id: ('storage', storage class, key, location, numel)
        self.value("storage")
        self.global_("torch", storage_class)
        self.value(key)
        self.value("cpu")
        self.integer(int(array.size))
        self.op(pickle.TUPLE)
        self.op(pickle.BINPERSID)
        self.integer(0)  # storage offset
        self.sequence(tuple(int(n) for n in array.shape))
        self.sequence(strides)
        self.op(pickle.NEWFALSE)  # requires_grad
        self.empty_ordered_dict()  # backward hooks
        self.op(pickle.TUPLE)
        self.op(pickle.REDUCE)


def pickle_bytes(obj) -> tuple[bytes, list[np.ndarray]]:
    """The data.pkl of `obj` and its storages, in key order 0, 1, ..."""
    writer = _PickleWriter()
    writer.op(pickle.PROTO, b"\x02")
    writer.value(obj)
    writer.op(pickle.STOP)
    return writer.out.getvalue(), writer.storages


def _write_record(archive: zipfile.ZipFile, stream, name: str, data: bytes):
    """One stored record whose data starts at a multiple of STORAGE_ALIGNMENT in the file."""
    start = stream.tell() + 30 + len(name.encode("utf-8")) + 4  # local header, name, extra-field header
    padding = -start % STORAGE_ALIGNMENT
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_STORED
    info.extra = b"FB" + struct.pack("<H", padding) + b"Z" * padding
    archive.writestr(info, data)


def write_torch_file(stream, obj, archive_name: str) -> None:
    """Write `obj` (dicts, tuples, lists, scalars and numpy arrays) as a torch.save zip archive into the seekable
    binary `stream` (positioned at its start), all records under the folder `archive_name`."""
    data_pkl, storages = pickle_bytes(obj)
    serialization_id = str(int(hashlib.sha256(data_pkl).hexdigest(), 16))[:40].rjust(40, "0").encode()
    records = [(ZIP_PICKLE, data_pkl), (".format_version", _FORMAT_VERSION),
               (".storage_alignment", str(STORAGE_ALIGNMENT).encode()), (ZIP_BYTEORDER, b"little")]
    records += [(f"{ZIP_STORAGE_DIR}{key}", storage.tobytes()) for key, storage in enumerate(storages)]
    records += [("version", _VERSION), (".data/serialization_id", serialization_id)]
    with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in records:
            _write_record(archive, stream, f"{archive_name}/{name}", data)
