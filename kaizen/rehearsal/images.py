"""Push the locally built images (``make images``) to the rehearsal's registry, by digest.

What the pipeline and the serving container run is then ``<registry>/<name>@sha256:...``,
pulled from that registry, as a cluster pulls an image a release pinned.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kaizen.pipeline.compiler import DIGEST_PATTERN
from kaizen.rehearsal.services import ServiceError, require_binary, run_logged


class ImagePushError(RuntimeError):
    """An image is missing locally or could not be pushed."""


@dataclass(frozen=True)
class PushedImage:
    """A local image pushed to the registry.

    Attributes:
        local: the local name it was pushed from (``localhost/kaizen-component:dev``).
        reference: the pinned reference, ``<registry>/<name>@sha256:...``.
        seconds: how long the push took.
    """

    local: str
    reference: str
    seconds: float

    @property
    def repository(self) -> str:
        return split_reference(self.reference)[0]

    @property
    def digest(self) -> str:
        return split_reference(self.reference)[1]


def push_command(podman: str, local: str, target: str, digest_file: Path) -> list[str]:
    """``podman push`` of ``local`` to ``target`` over plain HTTP, writing the digest to a file.

    Layers go up zstd-compressed: on two cores gzip takes 90 s for the 2.7 GB component image,
    zstd 35 s (containerd and CRI-O pull either).
    """
    return [
        podman,
        "push",
        "--tls-verify=false",
        "--compression-format=zstd",
        "--digestfile",
        str(digest_file),
        local,
        target,
    ]


def parse_digest(text: str) -> str:
    """The ``sha256:<64 hex>`` digest podman wrote to its ``--digestfile``.

    Raises:
        ImagePushError: the file holds anything else.
    """
    digest = text.strip()
    if not DIGEST_PATTERN.match(digest):
        raise ImagePushError(f"podman wrote no sha256 digest to its digest file: {text!r}")
    return digest


def pinned_reference(registry: str, name: str, digest: str) -> str:
    """``<registry>/<name>@<digest>``, the reference a cluster pulls."""
    return f"{registry}/{name}@{parse_digest(digest)}"


def split_reference(reference: str) -> tuple[str, str]:
    """``(repository, digest)`` of a reference pinned by digest.

    Raises:
        ImagePushError: the reference is not pinned by a sha256 digest.
    """
    repository, separator, digest = reference.partition("@")
    if not separator or not repository or not DIGEST_PATTERN.match(digest):
        raise ImagePushError(f"not a reference pinned by digest: {reference!r}")
    return repository, digest


def push_image(
    local: str,
    *,
    registry: str,
    name: str,
    workdir: Path,
    env: Mapping[str, str],
    tag: str = "rehearsal",
) -> PushedImage:
    """Push ``local`` to ``<registry>/<name>:<tag>`` and return it pinned by its digest.

    Args:
        local: a local image (``podman images``), e.g. ``localhost/kaizen-component:dev``.
        registry: ``127.0.0.1:<port>`` of the rehearsal registry.
        name: the repository name in the registry.
        workdir: the digest file and the push log (``logs/push-<name>.log``) go here.
        env: podman's environment (engine settings, the registry marked insecure).
        tag: the tag pushed along (the pinned reference does not use it).

    Raises:
        ImagePushError: the image is not built, or the push failed (with podman's output).
    """
    try:
        podman = require_binary("podman", "podman buildah runc")
    except ServiceError as error:
        raise ImagePushError(str(error)) from None
    log_path = workdir / "logs" / f"push-{name}.log"
    exists = subprocess.run([podman, "image", "exists", local], env=dict(env), check=False)
    if exists.returncode != 0:
        raise ImagePushError(f"image {local} is not built: run `make images` (docs/containers.md)")
    digest_file = workdir / f"{name}.digest"
    digest_file.unlink(missing_ok=True)
    started = time.monotonic()
    done = run_logged(
        push_command(podman, local, f"{registry}/{name}:{tag}", digest_file), log_path, env
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
        raise ImagePushError(f"podman push of {local} failed (log {log_path}):\n{tail}")
    digest = parse_digest(digest_file.read_text() if digest_file.is_file() else "")
    return PushedImage(
        local=local,
        reference=pinned_reference(registry, name, digest),
        seconds=time.monotonic() - started,
    )


def forget_pulled(reference: str, *, workdir: Path, env: Mapping[str, str]) -> None:
    """Drop the name a pull of ``reference`` gave the image in local storage.

    The registry's port changes with each rehearsal, so its names would pile up; the image
    itself stays under the names it had (``localhost/...:dev``). Nothing to drop is not an error.
    """
    try:
        podman = require_binary("podman", "podman buildah runc")
    except ServiceError:
        return
    repository = split_reference(reference)[0].rsplit("/", 1)[-1]
    run_logged(
        [podman, "untag", reference, reference], workdir / "logs" / f"push-{repository}.log", env
    )
