"""jaxgan.files: atomic files and directories, the JSON text format, SHA-256."""

import hashlib
import json

import pytest

from jaxgan import files


def test_atomic_directory_appears_only_when_complete(tmp_path):
    target = tmp_path / "out"
    with files.atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("a")
        assert not target.exists() and tmp.name.startswith(".out.partial-")
    assert (target / "a.txt").read_text() == "a"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_directory_leaves_nothing_when_the_block_fails(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with files.atomic_directory(tmp_path / "out") as tmp:
            (tmp / "a.txt").write_text("a")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_refuses_or_replaces_an_existing_one(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match="already exists"):
        with files.atomic_directory(tmp_path / "out"):
            pass
    with files.atomic_directory(tmp_path / "out", replace=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["new.txt"]


def test_json_text_keeps_number_lists_on_one_line_and_stays_json():
    doc = {"points": [[1, 2], [3, 4]], "distances": [0.5, -1e-3], "name": "a\nb", "nested": {"n": [1]}}
    text = files.json_text(doc)
    assert json.loads(text) == doc and text.endswith("}\n")
    # each list of numbers on one line; a list of lists keeps one inner list per line
    assert "\n    [1, 2],\n    [3, 4]\n" in text and '"distances": [0.5, -0.001]' in text


def test_write_json_and_sha256(tmp_path):
    files.write_json(tmp_path / "d.json", {"b": 1, "a": [1, 2]}, sort_keys=True)
    data = (tmp_path / "d.json").read_bytes()
    assert json.loads(data) == {"a": [1, 2], "b": 1} and data.index(b'"a"') < data.index(b'"b"')
    assert files.sha256_of(tmp_path / "d.json") == hashlib.sha256(data).hexdigest()
