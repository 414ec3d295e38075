"""Compile pipelines to the YAML that goes to the cluster, optionally pinning the image digest."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from kaizen.platform.fileio import write_text_atomic

DIGEST_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")
# [host[:port]/]path, the path lower case, no tag and no digest (the digest is given apart).
REPOSITORY_PATTERN = re.compile(
    r"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?"  # registry host[:port]/
    r"[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"  # path
)
PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"
TRAINING_PIPELINE_YAML = PIPELINES_DIR / "training_pipeline.yaml"


class CompileError(ValueError):
    """The pipeline could not be compiled as asked."""


def _training_pipeline() -> Any:
    from pipelines.training_pipeline import training_pipeline

    return training_pipeline


def pin_image(spec: dict[str, Any], image_digest: str, repository: str | None = None) -> int:
    """Replace every executor image tag by ``<repository>@<digest>``; return how many changed.

    Args:
        spec: the pipeline spec (first YAML document), changed in place.
        image_digest: ``sha256:<64 hex characters>``.
        repository: the image repository to pin (e.g. ``registry:5000/kaizen-component``);
            by default each executor keeps its own.
    """
    if not DIGEST_PATTERN.match(image_digest):
        raise CompileError(
            f"image digest must look like sha256:<64 hex characters>, got {image_digest!r}"
        )
    if repository is not None and not REPOSITORY_PATTERN.match(repository):
        raise CompileError(
            f"image repository must be [registry/]path without a tag or digest, got {repository!r}"
        )
    changed = 0
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for executor in executors.values():
        container = executor.get("container")
        if not container or "image" not in container:
            continue
        own = container["image"].split("@", 1)[0]
        if ":" in own.rsplit("/", 1)[-1]:
            own = own.rsplit(":", 1)[0]
        container["image"] = f"{repository or own}@{image_digest}"
        changed += 1
    return changed


def compile_pipeline(
    output: str | os.PathLike[str] = TRAINING_PIPELINE_YAML,
    image_digest: str | None = None,
    image_repository: str | None = None,
) -> Path:
    """Compile the training pipeline to ``output`` (atomically) and return its path.

    Args:
        output: where the YAML goes.
        image_digest: if given (``sha256:...``), every component image is pinned by it.
        image_repository: with ``image_digest``, the repository the images are pulled from
            instead of the one in the pipeline code (a mirror, the rehearsal's registry).
    """
    if image_repository and not image_digest:
        raise CompileError("an image repository is pinned with a digest: give image_digest too")
    from kfp import compiler

    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        compiled = Path(scratch) / "pipeline.yaml"
        compiler.Compiler().compile(_training_pipeline(), str(compiled))
        text = compiled.read_text()
        if image_digest:
            documents = list(yaml.safe_load_all(text))
            spec = documents[0]
            if pin_image(spec, image_digest, image_repository) == 0:
                raise CompileError("no container executors found to pin")
            text = yaml.safe_dump_all(documents, sort_keys=False)
    return write_text_atomic(target, text)
