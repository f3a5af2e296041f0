"""Reader for CTranslate2's `model.bin`: a flat list of named arrays.

The offline Whisper weights ship only in this format; reading it directly avoids a dependency on the
CTranslate2 runtime while letting `transformers`' own WhisperEncoder run them.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


def _read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<H", buf, pos)
    pos += 2
    text = bytes(buf[pos : pos + length]).rstrip(b"\0").decode("utf-8")
    return text, pos + length


def read_ctranslate2_variables(path: str | Path, prefix: str = "") -> dict[str, np.ndarray]:
    """All variables whose names start with `prefix`, as float32 arrays (others are skipped unread)."""
    data = Path(path).read_bytes()
    buf = memoryview(data)
    (version,) = struct.unpack_from("<I", buf, 0)
    if version < 5:
        raise ValueError(f"{path}: CTranslate2 model version {version} is too old (need >= 5)")
    _spec, pos = _read_string(buf, 4)
    pos += 4  # spec revision
    (count,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        name, pos = _read_string(buf, pos)
        rank = buf[pos]
        pos += 1
        shape = struct.unpack_from(f"<{rank}I", buf, pos)
        pos += 4 * rank
        dtype_id = buf[pos]
        pos += 1
        (nbytes,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if name.startswith(prefix):
            if dtype_id not in _DTYPES:
                raise ValueError(f"{path}: variable {name} has unsupported dtype id {dtype_id}")
            array = np.frombuffer(data, dtype=_DTYPES[dtype_id], count=nbytes // np.dtype(_DTYPES[dtype_id]).itemsize,
                                  offset=pos).reshape(shape)
            out[name] = array.astype(np.float32)
        pos += nbytes
    return out
