"""Data fingerprints: what identifies the data a training run learns from.

``kaizen fingerprint`` prints one. The retrain workflow (``.github/workflows/retrain.yml``,
docs/ci.md) names its Kubeflow Pipelines run ``retrain-<fingerprint>`` and starts none when a
run of that name exists, so the same data never starts two training runs.

- **A file** (CSV or Parquet, as a data-landing job writes it): the sha256 of its bytes, read in
  chunks. It is exactly what ``sha256sum FILE`` prints, so a job that lands data can announce
  it without Kaizen installed. The same rows written again with another compression get
  another fingerprint, and train once more: a cost, never a missed run.
- **Synthetic data** (no file): the sha256 of the generator's parameters, defaults filled in,
  as canonical JSON. The generator draws every value from its seed, so the same parameters
  always make the same rows (``kaizen.data.generator.GeneratorConfig``).

Pipeline parameters that do not shape the data (``epochs``, thresholds, ...) are accepted and
left out, so the same ``-p`` list can go to ``kaizen fingerprint`` and ``kaizen submit``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

#: The value ``sha256sum`` would print for a file, or of the synthetic parameters: 64 hex.
FINGERPRINT_CHARS = 64
_CHUNK_BYTES = 1 << 20
# Kept apart from any file's digest: a file whose bytes were this JSON cannot pose as it.
_SYNTHETIC_DOMAIN = "kaizen.synthetic-transactions.v1"


class FingerprintError(ValueError):
    """Data that cannot be fingerprinted; the message names the file or the parameter."""


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """The sha256 of a file's bytes (what ``sha256sum`` prints).

    Args:
        path: a local file; a ``file://`` URI names one too.

    Returns:
        64 lowercase hex digits.

    Raises:
        FingerprintError: naming the path, when it is missing, not a regular file or cannot
            be read.
    """
    text = os.fspath(path)
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    source = Path(text).expanduser()
    if not source.exists():
        raise FingerprintError(f"no data file at {source} to fingerprint")
    if not source.is_file():
        raise FingerprintError(f"{source} is not a regular file; give the data file itself")
    digest = hashlib.sha256()
    try:
        with source.open("rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as error:
        raise FingerprintError(f"cannot read {source}: {error.strerror or error}") from None
    return digest.hexdigest()


def generator_parameters() -> tuple[str, ...]:
    """The parameter names that shape synthetic data (the generator's own fields)."""
    from kaizen.data.generator import GeneratorConfig

    return tuple(field.name for field in fields(GeneratorConfig))


def synthetic_fingerprint(parameters: Mapping[str, Any]) -> str:
    """The fingerprint of the synthetic data these pipeline parameters generate.

    Args:
        parameters: pipeline parameter values (strings as typed on a command line, or typed
            values); the generator's (``seed``, ``rows``, ``customers``, ``merchants``,
            ``days``, ``fraud_rate``, ``drift``, ``start``) count, any other is ignored.

    Returns:
        64 lowercase hex digits.

    Raises:
        FingerprintError: naming the parameter, the type or range expected and the value
            given.
    """
    from kaizen.data.generator import GeneratorConfig

    kinds = {field.name: field.type for field in fields(GeneratorConfig)}
    chosen: dict[str, Any] = {}
    for name, value in parameters.items():
        if name in kinds:
            chosen[name] = _as_kind(name, value, str(kinds[name]))
    try:
        config = GeneratorConfig(**chosen)
    except ValueError as error:
        raise FingerprintError(f"synthetic data parameters: {error}") from None
    canonical = json.dumps(
        {"domain": _SYNTHETIC_DOMAIN, "generator": asdict(config)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _as_kind(name: str, value: Any, kind: str) -> Any:
    """``value`` as the generator field's type (``int``, ``float`` or ``str``)."""
    if kind == "str":
        return str(value)
    refused = FingerprintError(
        f"parameter {name}: expected {'an integer' if kind == 'int' else 'a number'}, got {value!r}"
    )
    if isinstance(value, bool):
        raise refused
    if isinstance(value, int | float) and not (kind == "int" and isinstance(value, float)):
        return int(value) if kind == "int" else float(value)
    try:
        return int(str(value).strip()) if kind == "int" else float(str(value).strip())
    except ValueError:
        raise refused from None
