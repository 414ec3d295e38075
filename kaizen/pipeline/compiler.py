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
PIPELINES_DIR = Path(__file__).resolve().parents[2] / "pipelines"
TRAINING_PIPELINE_YAML = PIPELINES_DIR / "training_pipeline.yaml"


class CompileError(ValueError):
    """The pipeline could not be compiled as asked."""


def _training_pipeline() -> Any:
    from pipelines.training_pipeline import training_pipeline

    return training_pipeline


def pin_image(spec: dict[str, Any], image_digest: str) -> int:
    """Replace every executor image tag by ``<repository>@<digest>``; return how many changed."""
    if not DIGEST_PATTERN.match(image_digest):
        raise CompileError(
            f"image digest must look like sha256:<64 hex characters>, got {image_digest!r}"
        )
    changed = 0
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for executor in executors.values():
        container = executor.get("container")
        if not container or "image" not in container:
            continue
        repository = container["image"].split("@", 1)[0]
        if ":" in repository.rsplit("/", 1)[-1]:
            repository = repository.rsplit(":", 1)[0]
        container["image"] = f"{repository}@{image_digest}"
        changed += 1
    return changed


def compile_pipeline(
    output: str | os.PathLike[str] = TRAINING_PIPELINE_YAML,
    image_digest: str | None = None,
) -> Path:
    """Compile the training pipeline to ``output`` (atomically) and return its path.

    Args:
        output: where the YAML goes.
        image_digest: if given (``sha256:...``), every component image is pinned by it.
    """
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
            if pin_image(spec, image_digest) == 0:
                raise CompileError("no container executors found to pin")
            text = yaml.safe_dump_all(documents, sort_keys=False)
    return write_text_atomic(target, text)
