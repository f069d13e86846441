"""storage.inflate: the same bytes and the same error with python-isal and with zlib alone."""

from __future__ import annotations

import platform
import zlib

import numpy as np
import pytest

import storage.inflate as inflate_module
from storage.inflate import inflate
from storage.rollup import pack, unpack_many


# pyproject.toml installs python-isal on these machines (its wheels); elsewhere zlib alone
ISAL_MACHINES = ("x86_64", "AMD64", "aarch64", "arm64")


@pytest.fixture(params=["isal", "zlib"] if platform.machine() in ISAL_MACHINES else ["zlib"])
def decompressor(request, monkeypatch):
    if request.param == "zlib":
        monkeypatch.setattr(inflate_module, "isal_zlib", None)
    else:
        assert inflate_module.isal_zlib is not None, "python-isal is installed on 64-bit x86 and ARM"
    return request.param


def test_same_bytes_either_way(decompressor):
    rng = np.random.default_rng(5)
    for raw in (b"", b"x" * 100_000, rng.integers(0, 256, 70_000, dtype=np.uint8).tobytes()):
        for level in (1, 6, 9):
            assert inflate(zlib.compress(raw, level)) == raw
    stats = np.cumsum(rng.normal(size=(61, 16)), axis=0)
    assert np.array_equal(unpack_many([pack(stats), pack(stats[:3])], 16), np.concatenate([stats, stats[:3]]))


@pytest.mark.parametrize("damaged", [b"garbage", zlib.compress(b"x" * 1000)[:-3], b""])
def test_damaged_stream_is_a_zlib_error_either_way(decompressor, damaged):
    with pytest.raises(zlib.error):
        inflate(damaged)
