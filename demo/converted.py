"""Copies of uploads converted for the browser's viewers (a mesh as .glb, a video as H.264 mp4).

Each copy is made once per file content, in one folder, so previewing the same file again (every redraw, another
session, the same file uploaded twice) converts nothing new.
"""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import Callable

from core.media import file_digest

CONVERTED_DIR = Path(tempfile.gettempdir()) / "xmodal-previews"
"""Under the system temp folder, which Gradio serves from without `allowed_paths`."""


def converted_copy(path: str, suffix: str, convert: Callable[[str, str], None]) -> str:
    """The path of `path` converted by `convert(source, target)` into a file ending in `suffix`, named like
    `path`; `convert`'s exceptions propagate and leave nothing behind."""
    target = CONVERTED_DIR / file_digest(path) / (Path(path).stem + suffix)
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f"{uuid.uuid4().hex}.partial{suffix}")  # another session may convert it too
        try:
            convert(path, str(partial))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return str(target)
