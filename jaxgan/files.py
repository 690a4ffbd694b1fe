"""Writing files and directories so that a reader never sees half of one, and the small file utilities every
command shares: one JSON text format, one SHA-256 of a file.

Files are written to a temporary name beside the destination and renamed into place (`atomic_write`); directories
(checkpoints, training states) are built under a hidden temporary name and renamed when complete
(`atomic_directory`). A rename within one filesystem is atomic, so an interrupted command leaves either the old state
or the new one, never a half-written output under the requested name.
"""

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path


def atomic_write(path: Path, write) -> None:
    """Call write(file_object) on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private; give it the permissions open() would
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_directory(path, *, replace: bool = False):
    """Build the directory `path` under a hidden temporary name beside it; publish it by one rename when the block
    exits normally, delete it when the block raises.

        with atomic_directory(dst) as tmp:
            (tmp / "file").write_text(...)

    replace: an existing `path` is removed just before the rename (training states of the same step); otherwise an
    existing `path` is refused with FileExistsError before anything is written.
    """
    path = Path(path).resolve()
    if path.exists() and not replace:
        raise FileExistsError(f"{path} already exists; choose a new destination or remove it first")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.partial-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if replace and path.exists():
            shutil.rmtree(path)
        publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, path: Path) -> None:
    """The one step that makes a finished directory visible under its name (tests replace it to simulate a failure
    at the last moment)."""
    os.replace(tmp, path)  # atomic on one filesystem: the directory appears complete or not at all


def json_text(doc, *, sort_keys: bool = False) -> str:
    """The JSON of every file jaxgan writes: an indent of 2, lists of numbers (points, distances, shapes) kept on one
    line, a final newline."""
    text = json.dumps(doc, indent=2, sort_keys=sort_keys)
    # Only arrays that json.dumps broke over lines: JSON strings hold no raw newlines, so none is touched.
    return re.sub(r"\[\n[-+\d.eE,\s]*\]", lambda m: "[" + " ".join(m.group(0)[1:-1].split()) + "]", text) + "\n"


def json_writer(doc, *, sort_keys: bool = False):
    """A `write(file)` for `atomic_write` that writes `json_text(doc)`; the text is made now, so a document that is
    not JSON fails before any file is opened."""
    data = json_text(doc, sort_keys=sort_keys).encode()
    return lambda f: f.write(data)


def write_json(path, doc, *, sort_keys: bool = False) -> None:
    """`json_text(doc)` written atomically to `path`."""
    atomic_write(Path(path), json_writer(doc, sort_keys=sort_keys))


def sha256_of(path) -> str:
    """The hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
