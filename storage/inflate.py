"""Decompressing zlib streams (the rollups' packed arrays, packed hours): by python-isal
(Intel ISA-L: the same bytes, about 1.5 times faster for the rollups of a week; a third of the
analysis's reading time is spent here) where it is installed, else by the standard library's
zlib. Its errors are zlib.error either way.

python-isal has wheels for 64-bit x86 and ARM (pyproject.toml installs it there); elsewhere, a
32-bit Raspberry Pi for instance, zlib does the same work a little slower.
"""

from __future__ import annotations

import zlib

try:
    from isal import isal_zlib
except ImportError:  # not installed for this platform: zlib reads the same streams
    isal_zlib = None

error = zlib.error


def inflate(data: bytes) -> bytes:
    """The bytes of one whole zlib stream; zlib.error when it is not one (damaged, cut)."""
    if isal_zlib is None:
        return zlib.decompress(data)
    try:
        return isal_zlib.decompress(data)
    except isal_zlib.error as exc:
        raise zlib.error(str(exc)) from exc
