"""Build Kaizen's two images, report their sizes and fail when one is over its budget.

* the component image (``docker/component.Dockerfile``): every KFP step and the Katib trial;
* the serving image (``docker/serving.Dockerfile``): ``kaizen serve``, the KServe predictor.

``make images`` runs this; docs/containers.md explains the choices and the budgets. It uses
docker when ``docker info`` answers, podman otherwise. When the base image is the local
Debian base (the default) and that image does not exist yet, it is built first with
mmdebstrap, without any registry, and kept for later builds.

Standard library only, so it runs before any virtual environment exists::

    python3 docker/build_images.py --help
    python3 docker/build_images.py --dry-run     # print the commands, run nothing
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONTAINERS_CONF = REPO_ROOT / "docker" / "containers.conf"

LOCAL_BASE_IMAGE = "localhost/kaizen-debian-base:bookworm"
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_SECURITY_MIRROR = "http://deb.debian.org/debian-security"
# What the Dockerfiles need of a base: Python 3.11 with venv, and CA certificates for HTTPS.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
# Documentation, manual pages and translations: nothing in an image reads them. Copyright
# files stay, as Debian's licences ask.
BASE_PATH_FILTERS = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host files that let pip inside a podman build trust the host's network (a proxy's CA):
# mounted read-only for the build's RUN steps only, never copied into an image.
HOST_TRUST_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pip.conf")

MB = 1_000_000


@dataclass(frozen=True)
class Image:
    """One image this script builds.

    Attributes:
        name: short name (``component``, ``serving``).
        dockerfile: path relative to the repository root.
        tag: default name:tag.
        budget_mb: most megabytes (10^6 bytes, uncompressed, base included) the image may have.
    """

    name: str
    dockerfile: str
    tag: str
    budget_mb: int


# Budgets: docs/containers.md, "Sizes and budgets", says where each megabyte goes.
IMAGES = (
    Image("component", "docker/component.Dockerfile", "localhost/kaizen-component:dev", 2900),
    Image("serving", "docker/serving.Dockerfile", "localhost/kaizen-serving:dev", 2600),
)


def choose_engine(requested: str, docker_answers: Callable[[], bool]) -> str:
    """The container engine: ``requested`` unless ``auto``; then docker if its daemon answers.

    Raises:
        ValueError: an engine other than auto, docker or podman.
    """
    if requested not in ("auto", "docker", "podman"):
        raise ValueError(f"engine must be auto, docker or podman, got {requested!r}")
    if requested != "auto":
        return requested
    return "docker" if docker_answers() else "podman"


def build_mounts(
    engine: str, setting: str | None, exists: Callable[[str], bool] = os.path.exists
) -> list[str]:
    """The ``-v`` options of a build: ``setting`` when given (even empty), else a default.

    The default, for podman only (``docker build`` has no ``-v``), mounts the host's CA bundle
    and pip configuration read-only where they exist (``HOST_TRUST_FILES``).

    Args:
        engine: docker or podman.
        setting: ``KAIZEN_BUILD_MOUNTS`` as the user set it (shell words), or None if unset.
        exists: whether a host path exists.
    """
    if setting is not None:
        return shlex.split(setting)
    if engine != "podman":
        return []
    mounts: list[str] = []
    for path in HOST_TRUST_FILES:
        if exists(path):
            mounts += ["-v", f"{path}:{path}:ro"]
    return mounts


def build_command(
    engine: str,
    image: Image,
    *,
    tag: str,
    base_image: str,
    git_commit: str,
    mounts: Sequence[str] = (),
    extra_flags: Sequence[str] = (),
) -> list[str]:
    """The command that builds ``image`` from the repository root.

    podman gets ``--format docker``: the OCI format has no HEALTHCHECK, and podman would drop
    the serving image's with a warning.
    """
    command = [engine, "build"]
    if engine == "podman":
        command += ["--format", "docker"]
    command += [
        "--file",
        image.dockerfile,
        "--tag",
        tag,
        "--build-arg",
        f"BASE_IMAGE={base_image}",
        "--build-arg",
        f"KAIZEN_GIT_COMMIT={git_commit}",
        *mounts,
        *extra_flags,
        ".",
    ]
    return command


def base_image_commands(
    engine: str,
    tarball: str,
    *,
    tag: str = LOCAL_BASE_IMAGE,
    mirror: str = DEBIAN_MIRROR,
    security_mirror: str = DEBIAN_SECURITY_MIRROR,
) -> list[list[str]]:
    """mmdebstrap a minimal Debian with Python into ``tarball``, then import it as ``tag``.

    The suite's updates and security archives are included, so the base has the fixes
    released since the point release.
    """
    bootstrap = [
        "mmdebstrap",
        "--variant=minbase",
        f"--include={','.join(BASE_PACKAGES)}",
        *(f"--dpkgopt={option}" for option in BASE_PATH_FILTERS),
        DEBIAN_SUITE,
        tarball,
        f"deb {mirror} {DEBIAN_SUITE} main",
        f"deb {mirror} {DEBIAN_SUITE}-updates main",
        f"deb {security_mirror} {DEBIAN_SUITE}-security main",
    ]
    load = [
        engine,
        "import",
        "--change",
        f"ENV PATH={BASE_PATH}",
        "--change",
        'CMD ["/bin/bash"]',
        tarball,
        tag,
    ]
    return [bootstrap, load]


def base_pin_warning(base_image: str) -> str | None:
    """A warning for a registry base that is not pinned by digest; None when all is well."""
    if base_image == LOCAL_BASE_IMAGE or "@sha256:" in base_image:
        return None
    return (
        f"warning: BASE_IMAGE {base_image} is not pinned by digest; a production build names "
        "one (name:tag@sha256:...), so that every rebuild starts from the same base"
    )


def budget_report(images: Mapping[str, tuple[int, int, float]]) -> tuple[list[str], list[str]]:
    """Lines of the size table and the names of images over budget.

    Args:
        images: tag to (size in bytes, budget in MB, build seconds).
    """
    lines = [f"{'image':<40} {'size':>9} {'budget':>9} {'build':>8}"]
    over = []
    for tag, (size, budget_mb, seconds) in images.items():
        verdict = "" if size <= budget_mb * MB else "  OVER BUDGET"
        if verdict:
            over.append(tag)
        lines.append(
            f"{tag:<40} {size / MB:>6.0f} MB {budget_mb:>6} MB {_duration(seconds):>8}{verdict}"
        )
    return lines, over


def git_commit(run: Callable[..., subprocess.CompletedProcess[str]] = subprocess.run) -> str:
    """The checked-out commit, ``+dirty`` when tracked files changed; ``unknown`` without git.

    The same form ``kaizen.registry.tracking.code_version`` records.
    """
    try:
        sha = run(
            ["git", "rev-parse", "--verify", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+dirty" if changes else sha


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{rest}s"


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        result = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def _image_exists(engine: str, tag: str) -> bool:
    result = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, check=False
    )
    return result.returncode == 0


def _image_size(engine: str, tag: str) -> int:
    output = subprocess.run(
        [engine, "image", "inspect", "--format", "{{.Size}}", tag],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(output.strip())


def _run(command: Sequence[str], dry_run: bool) -> None:
    print("+ " + shlex.join(command), flush=True)
    if not dry_run:
        subprocess.run(command, cwd=REPO_ROOT, check=True)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="docker/build_images.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--engine", default="auto", help="auto (default), docker or podman")
    parser.add_argument(
        "--base-image",
        default=LOCAL_BASE_IMAGE,
        help=f"base of both images (default: {LOCAL_BASE_IMAGE}, built here when missing)",
    )
    for image in IMAGES:
        parser.add_argument(
            f"--{image.name}-image", default=image.tag, help=f"name:tag (default {image.tag})"
        )
    parser.add_argument(
        "--only", action="append", choices=[image.name for image in IMAGES], help="repeatable"
    )
    parser.add_argument(
        "--mounts",
        default=os.environ.get("KAIZEN_BUILD_MOUNTS"),
        help="podman build -v options, as shell words (default: KAIZEN_BUILD_MOUNTS, else "
        "the host's CA bundle and /etc/pip.conf, read-only, with podman)",
    )
    parser.add_argument(
        "--build-flags", default="", help="more build options, as shell words (--no-cache)"
    )
    parser.add_argument("--debian-mirror", default=DEBIAN_MIRROR)
    parser.add_argument("--debian-security-mirror", default=DEBIAN_SECURITY_MIRROR)
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    engine = choose_engine(args.engine, _docker_answers)
    if engine == "podman":
        os.environ.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    if shutil.which(engine) is None:
        print(f"error: {engine} is not installed (`make images` installs podman)", file=sys.stderr)
        return 1
    warning = base_pin_warning(args.base_image)
    if warning:
        print(warning, file=sys.stderr)

    if args.base_image == LOCAL_BASE_IMAGE and (
        args.dry_run or not _image_exists(engine, LOCAL_BASE_IMAGE)
    ):
        print(f"building the base image {LOCAL_BASE_IMAGE} (Debian {DEBIAN_SUITE}, no registry)")
        with tempfile.TemporaryDirectory(prefix="kaizen-base-") as folder:
            started = time.monotonic()
            for command in base_image_commands(
                engine,
                str(Path(folder) / "base.tar"),
                mirror=args.debian_mirror,
                security_mirror=args.debian_security_mirror,
            ):
                _run(command, args.dry_run)
            print(f"base image built in {_duration(time.monotonic() - started)}")

    mounts = build_mounts(engine, args.mounts)
    commit = git_commit()
    built: dict[str, tuple[int, int, float]] = {}
    for image in IMAGES:
        if args.only and image.name not in args.only:
            continue
        tag = getattr(args, f"{image.name}_image")
        command = build_command(
            engine,
            image,
            tag=tag,
            base_image=args.base_image,
            git_commit=commit,
            mounts=mounts,
            extra_flags=shlex.split(args.build_flags),
        )
        started = time.monotonic()
        _run(command, args.dry_run)
        seconds = time.monotonic() - started
        if not args.dry_run:
            built[tag] = (_image_size(engine, tag), image.budget_mb, seconds)

    if args.dry_run:
        return 0
    lines, over = budget_report(built)
    print("\n".join(["", *lines]))
    if over:
        print(f"error: over budget: {', '.join(over)} (see docs/containers.md)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
