"""Writing a file so that a reader, or a job resumed after a kill, finds either the old content or all of the new
one, never a torn file: the content goes to a file beside the target, which is then renamed over it (one atomic
step on the same filesystem)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yields the path to write to; on success it replaces `path`, on an error it is removed and `path` is kept."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield partial
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
