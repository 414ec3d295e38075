"""A model's identity that does not change when the same model is saved twice.

Keras stamps ``date_saved`` into a ``.keras`` archive (and a file time on the weights entry),
and numbers shared objects in ``config.json`` by their Python ``id()``, so two saves of
identical weights differ in their sha256. The file sha256 stays the integrity
check; this digest (over the archive's config and weights, not its save date) names the
version, so retraining the same model from the same inputs publishes nothing new.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

_VOLATILE_ENTRIES = frozenset({"metadata.json"})
_CONFIG_ENTRY = "config.json"


def _canonical_config(raw: bytes) -> bytes:
    """config.json with ``shared_object_id`` values renumbered in order of appearance."""
    renumbered: dict[object, int] = {}

    def walk(node: object) -> object:
        if isinstance(node, dict):
            out: dict[str, object] = {}
            for key, value in node.items():
                if key == "shared_object_id":
                    out[key] = renumbered.setdefault(value, len(renumbered))
                else:
                    out[key] = walk(value)
            return out
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return json.dumps(walk(json.loads(raw)), sort_keys=True).encode()


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
                data = archive.read(name)
                if name == _CONFIG_ENTRY:
                    data = _canonical_config(data)
                digest.update(name.encode() + b"\0")
                digest.update(hashlib.sha256(data).digest())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ValueError(f"{os.fspath(path)} is not a readable .keras archive: {error}") from None
    return digest.hexdigest()
