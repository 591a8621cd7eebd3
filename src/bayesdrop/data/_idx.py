"""Reading IDX files (the MNIST format), gzipped or raw, with every header field checked."""

from __future__ import annotations

import gzip
import struct
import zlib
from os import PathLike
from pathlib import Path

import numpy as np

from .._errors import BayesdropError

__all__ = ["read_idx", "parse_idx"]

# Third byte of the magic number -> big-endian numpy dtype.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_GZIP_MAGIC = b"\x1f\x8b"


def _decompress(data: bytes, source: str) -> bytes:
    if not data.startswith(_GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise BayesdropError(
            f"The gzip file {source} is corrupt or truncated ({type(err).__name__}: {err}). "
            "Delete it and get the data again."
        ) from None


def parse_idx(
    data: bytes,
    *,
    source: str = "<bytes>",
    expected_shape: tuple[int | None, ...] | None = None,
) -> np.ndarray:
    """Parse the (already decompressed) bytes of an IDX file.

    Args:
        data: the file's bytes; gzip-compressed bytes are decompressed first.
        source: a name for the bytes, used in error messages (usually the path).
        expected_shape: optional shape to enforce, ``None`` entries match any size (e.g.
            ``(None, 28, 28)`` for MNIST images).

    Returns:
        An array of the file's shape ``(d0, d1, ...)`` in native byte order (uint8 for MNIST).

    Raises:
        BayesdropError: bad magic number, unknown type code, truncated or oversized payload, or
            a shape other than ``expected_shape``.
    """
    data = _decompress(data, source)
    if len(data) < 4:
        raise BayesdropError(
            f"Expected the IDX file {source} to start with a 4-byte magic number, but it has only {len(data)} bytes."
        )
    zero, type_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or type_code not in _IDX_DTYPES or ndim == 0:
        magic = struct.unpack(">I", data[:4])[0]
        raise BayesdropError(
            f"Expected {source} to be an IDX file (magic number 0x0000TTNN with type TT in "
            f"{{08, 09, 0B, 0C, 0D, 0E}} and NN >= 1 dimensions), but got magic number "
            f"0x{magic:08X}."
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise BayesdropError(
            f"The IDX file {source} is truncated: its header declares {ndim} dimensions "
            f"({header_size} header bytes) but the file has {len(data)} bytes."
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    payload = len(data) - header_size
    if payload != expected_bytes:
        what = "truncated" if payload < expected_bytes else "longer than its header says"
        raise BayesdropError(
            f"The IDX file {source} is {what}: header shape {tuple(shape)} needs "
            f"{expected_bytes} data bytes, but {payload} follow the header."
        )
    if expected_shape is not None:
        ok = len(expected_shape) == len(shape) and all(
            e is None or e == s for e, s in zip(expected_shape, shape, strict=True)
        )
        if not ok:
            want = ", ".join("N" if e is None else str(e) for e in expected_shape)
            raise BayesdropError(
                f"Expected the IDX file {source} to hold an array of shape ({want}), but its "
                f"header says {tuple(shape)}."
            )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path: str | PathLike[str], *, expected_shape: tuple[int | None, ...] | None = None) -> np.ndarray:
    """Read an IDX file (MNIST format), gzip-compressed or raw (detected from its bytes).

    Args:
        path: the file.
        expected_shape: optional shape to enforce; ``None`` entries match any size.

    Returns:
        The array, shape as in the file's header, native byte order.

    Raises:
        BayesdropError: missing file or any format problem (see :func:`parse_idx`).
    """
    path = Path(path)
    if not path.is_file():
        raise BayesdropError(f"Expected argument `path` to be an existing file, but got {path}.")
    return parse_idx(path.read_bytes(), source=str(path), expected_shape=expected_shape)
