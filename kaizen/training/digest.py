"""A model's identity that does not change when the same model is saved twice.

Keras stamps ``date_saved`` into a ``.keras`` archive (and a file time on the weights entry),
so two saves of identical weights differ in their sha256. The file sha256 stays the integrity
check; this digest (over the archive's config and weights, not its save date) names the
version, so retraining the same model from the same inputs publishes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

_VOLATILE_ENTRIES = frozenset({"metadata.json"})


def model_content_digest(path: str | os.PathLike[str]) -> str:
    """sha256 over every archive entry's name and bytes, except the save-time metadata.

    Raises:
        ValueError: ``path`` is not a ``.keras`` zip archive.
    """
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(archive.namelist())
            for name in names:
                if name in _VOLATILE_ENTRIES:
                    metadata = json.loads(archive.read(name))
                    digest.update(f"keras_version={metadata.get('keras_version')}".encode())
                    continue
                digest.update(name.encode() + b"\0")
                digest.update(hashlib.sha256(archive.read(name)).digest())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ValueError(f"{os.fspath(path)} is not a readable .keras archive: {error}") from None
    return digest.hexdigest()
