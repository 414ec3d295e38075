"""Atomic file writes: a reader sees the old file or the whole new one, never half of it.

Everything is written to a temporary file in the target's folder, flushed to disk, then
renamed over the target (``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_path(
    target: str | os.PathLike[str], mode: int = 0o644, suffix: str = ".tmp"
) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``target``.

    If the block raises, the temporary file is removed and ``target`` is left as it was.

    Args:
        target: the file to create or replace; its folder is created if missing.
        mode: permissions of the result (temporary files start owner-only).
        suffix: ending of the temporary name, for writers that insist on one (Keras).
    """
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=suffix, dir=final.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(
    target: str | os.PathLike[str], payload: Mapping[str, Any] | list[Any], indent: int = 2
) -> Path:
    return write_text_atomic(
        target, json.dumps(payload, indent=indent, sort_keys=True, default=str)
    )
