"""The last model version a server loaded successfully, kept on disk as a verified copy.

When the champion fails to load (its file in the registry is corrupt, the registry is
unreachable), a server that has served before falls back to the last version that worked
instead of serving nothing. The copy lives under
``$KAIZEN_HOME/serving/last-good/<model-name>``::

    last-good/
      fraud-detector -> .copies/fraud-detector/3f9c0a...   (symlink, swapped atomically)
      .copies/fraud-detector/3f9c0a.../
        model.keras  model.keras.sha256  features.json  metadata.json
        last-good.json   {"model_name", "version_info", "files": {name: sha256}, "saved_at"}

A new copy is written into a fresh hidden folder, every file flushed to disk, the manifest
last; only then does the ``<model-name>`` symlink switch to it with one atomic rename. A
crash at any point leaves the previous copy (or none), never a half-written one. ``recall``
re-hashes every file against the manifest, so a copy modified on disk is refused (logged,
``None``) rather than loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kaizen.platform.locks import file_lock

logger = logging.getLogger(__name__)

MANIFEST = "last-good.json"
# The registry's name for the model file (kaizen.training.train.MODEL_FILE); spelled out here
# so this module stays importable without pandas/TensorFlow.
MODEL_FILE = "model.keras"


def last_good_root(home: str | os.PathLike[str]) -> Path:
    """Folder holding every model's last-good copy: ``$KAIZEN_HOME/serving/last-good``.

    Args:
        home: ``KAIZEN_HOME`` (``Settings.home``).

    Returns:
        The folder (not created).
    """
    return Path(home) / "serving" / "last-good"


def _check_name(model_name: str) -> str:
    # The name becomes a path component: refuse anything that could escape the cache folder.
    if (
        not model_name
        or model_name in {".", ".."}
        or model_name.startswith(".")
        or any(sep in model_name for sep in ("/", "\\", "\0"))
    ):
        raise ValueError(
            f"model name {model_name!r} cannot name a cache folder: expected a non-empty name "
            "without '/', '\\' or a leading '.'"
        )
    return model_name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _writer_lock(root: Path, model_name: str) -> Iterator[None]:
    # Several servers may share one KAIZEN_HOME; their writers take turns (waiting as long
    # as it takes). The lock file's folder is created.
    with file_lock(root / f".{model_name}.lock"):
        yield


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_manifest(folder: Path) -> dict[str, Any]:
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    if (
        not isinstance(manifest, dict)
        or not isinstance(manifest.get("files"), dict)
        or not manifest["files"]
        or not isinstance(manifest.get("version_info"), dict)
    ):
        raise ValueError(f"{MANIFEST} lacks 'files' or 'version_info'")
    return manifest


def _problem(folder: Path) -> str | None:
    """Why ``folder`` is not a usable copy, or None when every file matches its sha256."""
    if not folder.is_dir():
        return f"{folder} does not exist"
    try:
        manifest = _read_manifest(folder)
    except FileNotFoundError:
        return f"{folder / MANIFEST} is missing (the copy was never completed)"
    except (OSError, ValueError) as error:
        return f"{folder / MANIFEST} is unreadable: {error}"
    for name, expected in sorted(manifest["files"].items()):
        path = folder / str(name)
        if not path.is_file():
            return f"{name} is missing from {folder}"
        actual = _sha256(path)
        if actual != expected:
            return (
                f"{name} has sha256 {actual} but the copy recorded {expected}; "
                "it was modified after it was saved"
            )
    return None


def remember(
    model_name: str,
    files_dir: str | os.PathLike[str],
    version_info: Mapping[str, Any],
    *,
    home: str | os.PathLike[str],
) -> Path:
    """Keep a verified copy of a model version that has just loaded successfully.

    Copies every regular, non-hidden file at the top of ``files_dir`` (the registry's
    ``model.keras``, ``model.keras.sha256``, ``features.json``, ``metadata.json``) with
    their sha256s. Remembering the version already held is a no-op that rewrites nothing.

    Args:
        model_name: Registered model name; names the cache folder.
        files_dir: Folder holding the version's verified files.
        version_info: JSON-ready description of the version (``ModelVersionInfo.to_dict()``);
            returned as is by :func:`recall`.
        home: ``KAIZEN_HOME`` (``Settings.home``).

    Returns:
        The cache folder path (``.../last-good/<model_name>``).

    Raises:
        ValueError: ``model_name`` cannot be a folder name, ``files_dir`` holds no files,
            or its ``model.keras`` differs from ``version_info["sha256"]``.
        OSError: the copy cannot be written; the previous copy is left as it was.
    """
    _check_name(model_name)
    source = Path(files_dir)
    names = sorted(
        entry.name
        for entry in source.iterdir()
        if entry.is_file() and not entry.name.startswith(".") and entry.name != MANIFEST
    )
    if not names:
        raise ValueError(f"cannot remember {model_name}: {source} holds no model files")
    files = {name: _sha256(source / name) for name in names}
    expected = version_info.get("sha256")
    if expected and MODEL_FILE in files and files[MODEL_FILE] != expected:
        raise ValueError(
            f"cannot remember {model_name}: {source / MODEL_FILE} has sha256 "
            f"{files[MODEL_FILE]} but the version records {expected}"
        )
    info = json.loads(json.dumps(dict(version_info), default=str))
    root = last_good_root(home)
    link = root / model_name
    with _writer_lock(root, model_name):
        current = _current(link)
        if current is not None and _problem(current) is None:
            manifest = _read_manifest(current)
            if manifest["files"] == files and manifest["version_info"] == info:
                return link
        copies = root / ".copies" / model_name
        copies.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="copy-", dir=copies))
        try:
            for name in names:
                shutil.copyfile(source / name, staging / name)
                with (staging / name).open("rb") as handle:
                    os.fsync(handle.fileno())
            manifest_text = json.dumps(
                {
                    "model_name": model_name,
                    "version_info": info,
                    "files": files,
                    "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
                },
                indent=2,
                sort_keys=True,
            )
            # The manifest goes last: a folder without one is, by definition, incomplete.
            with (staging / MANIFEST).open("w", encoding="utf-8") as handle:
                handle.write(manifest_text)
                handle.flush()
                os.fsync(handle.fileno())
            # Files were re-read from the copy: a disk that lost a write is caught here.
            problem = _problem(staging)
            if problem is not None:
                raise OSError(f"the new last-good copy of {model_name} is damaged: {problem}")
            staging.chmod(0o755)
            _fsync_dir(staging)
            if link.is_dir() and not link.is_symlink():
                # A plain folder (copied in by hand) cannot be swapped atomically: set aside.
                os.replace(link, copies / f"replaced-{staging.name}")
            temporary_link = root / f".{model_name}.link-{staging.name}"
            temporary_link.symlink_to(staging.relative_to(root))
            os.replace(temporary_link, link)
            _fsync_dir(root)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        # The replaced copy, and any folder a crashed writer left behind, are not needed.
        for leftover in copies.iterdir():
            if leftover != staging:
                shutil.rmtree(leftover, ignore_errors=True)
    version = info.get("version", "?")
    logger.info("kept a verified last-good copy of %s version %s at %s", model_name, version, link)
    return link


def _current(link: Path) -> Path | None:
    """The folder ``link`` points at, if it is one of our copies."""
    if link.is_symlink():
        target = link.parent / os.readlink(link)
        return target if target.is_dir() else None
    if link.is_dir():
        # Not written by remember (which always links); treated as a copy all the same.
        return link
    return None


def recall(model_name: str, *, home: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]] | None:
    """The verified last-good copy of ``model_name``, or None (logging why).

    Every file is hashed again and compared with the manifest: a copy that is missing,
    incomplete or modified on disk is refused.

    Args:
        model_name: Registered model name.
        home: ``KAIZEN_HOME`` (``Settings.home``).

    Returns:
        ``(folder, version_info)``: the folder holding the model files (the resolved copy,
        stable while it is read) and the ``version_info`` given to :func:`remember`; None
        when there is no usable copy.

    Raises:
        ValueError: ``model_name`` cannot be a folder name.
    """
    _check_name(model_name)
    link = last_good_root(home) / model_name
    folder = _current(link)
    if folder is None:
        logger.warning("no last-good copy of %s: %s does not exist", model_name, link)
        return None
    problem = _problem(folder)
    if problem is not None:
        logger.warning("refusing the last-good copy of %s: %s", model_name, problem)
        return None
    manifest = _read_manifest(folder)
    return folder, dict(manifest["version_info"])
