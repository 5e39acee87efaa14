"""gmp.files: atomic writes and strict JSON."""

import json
import math
import os
import stat

import numpy as np
import pytest

from gmp.files import atomic_write, atomic_write_text, jsonable, write_json


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    atomic_write_text(path, "old\n")

    def fail(f):
        f.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        atomic_write(path, fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in path.parent.iterdir()] == ["out.txt"]   # no temporary left


def test_atomic_write_gives_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644


def test_jsonable_and_write_json(tmp_path):
    obj = {1: np.float32(0.5), "a": [math.nan, np.int64(3), np.bool_(True)],
           "b": np.array([1.0, math.inf])}
    assert jsonable(obj) == {"1": 0.5, "a": [None, 3, True], "b": [1.0, None]}
    write_json(tmp_path / "r.json", obj)
    text = (tmp_path / "r.json").read_text()
    assert text.endswith("\n") and json.loads(text) == jsonable(obj)
