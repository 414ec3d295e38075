"""Step: make the serving side serve the version the register step added.

What the registry now offers is what gets served: the registered version as ``champion`` when
it is the first one, else as ``challenger`` (the model server's own canary then decides
between the two). Where it is served depends on ``KAIZEN_DEPLOY_TARGET``:

- ``local``: a running ``kaizen serve`` picks the alias move up by hot reload, so there is
  nothing to change. With ``KAIZEN_DEPLOY_SERVER_URL`` set and the server answering, the step
  waits until its ``/metrics`` report the version; without a server the version is recorded
  and the run goes on.
- ``kserve``: the InferenceService's predictor pods are rolled to the version through the
  Kubernetes API (:mod:`kaizen.platform.inference_service`), and the step waits for them.

Re-running the step for the same version changes nothing.
"""

from __future__ import annotations

import logging
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from kaizen.steps._io import read_json

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings

logger = logging.getLogger("kaizen.steps.deploy_model")

#: The gauge ``kaizen serve`` exposes per variant: the registry version it serves (0: none).
SERVED_VERSION_METRIC = "kaizen_serving_model_version"
_GAUGE_LINE = re.compile(
    rf"^{SERVED_VERSION_METRIC}\{{(?P<labels>[^}}]*)\}}\s+(?P<value>\S+)\s*$", re.MULTILINE
)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class DeployError(RuntimeError):
    """The version could not be delivered where ``KAIZEN_DEPLOY_TARGET`` says."""


def deploy_step(
    registered_path: str | os.PathLike[str],
    *,
    settings: Settings,
    timeout_s: float = 600.0,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    """Make the serving side serve the version the register step added.

    Args:
        registered_path: the register step's record (JSON with ``version`` and ``aliases``).
        settings: platform settings (registry, ``deploy_*`` target).
        timeout_s: how long to wait for the server or the InferenceService.
        poll_s: time between looks at their progress.

    Returns:
        ``target``, ``model``, ``version``, ``alias`` (``champion``, ``challenger`` or None
        when the registry no longer offers the version), ``status`` (``recorded``,
        ``served``, ``rolled-out`` or ``superseded``), ``changed`` and the target's details
        (``server`` for local, ``inference_service`` for kserve).

    Raises:
        ValueError: the record names no version.
        DeployError: a local server answered but did not serve the version in time.
        kaizen.platform.inference_service.InferenceServiceError: the cluster rollout failed.
    """
    record = read_json(registered_path)
    version = record.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(
            f"{registered_path}: the register step's record must give the registered version "
            f"as a positive integer in 'version', got {version!r}"
        )
    alias, aliases = _offered_as(version, settings)
    result: dict[str, Any] = {
        "target": settings.deploy_target,
        "model": settings.model_name,
        "version": version,
        "alias": alias,
        "changed": False,
    }
    if alias is None:
        shown = ", ".join(f"{name}={number}" for name, number in sorted(aliases.items()))
        note = (
            f"version {version} is no longer offered by the registry (aliases: "
            f"{shown or 'none'}): a canary rollback or a later run moved on; nothing to deploy"
        )
        logger.warning("%s", note)
        return {**result, "status": "superseded", "note": note}
    if settings.deploy_target == "kserve":
        return {**result, **_deploy_to_kserve(version, settings, timeout_s, poll_s)}
    return {**result, **_deploy_locally(version, alias, settings, timeout_s, poll_s)}


def _offered_as(version: int, settings: Settings) -> tuple[str | None, dict[str, int]]:
    """The alias under which the registry offers ``version`` now, and every alias."""
    from kaizen.registry import CHALLENGER, CHAMPION, ModelRegistry

    aliases = ModelRegistry(settings).alias_versions()
    for alias in (CHAMPION, CHALLENGER):
        if aliases.get(alias) == version:
            return alias, aliases
    return None, aliases


def _deploy_to_kserve(
    version: int, settings: Settings, timeout_s: float, poll_s: float
) -> dict[str, Any]:
    from kaizen.platform.inference_service import InferenceServiceRollout, cluster_api_client

    with InferenceServiceRollout(
        cluster_api_client(), settings.deploy_namespace, settings.inference_service
    ) as rollout:
        outcome = rollout.deploy(version, timeout_s=timeout_s, poll_s=poll_s)
    return {
        "status": "rolled-out",
        "changed": outcome.changed,
        "inference_service": outcome.to_dict(),
    }


def _deploy_locally(
    version: int, alias: str, settings: Settings, timeout_s: float, poll_s: float
) -> dict[str, Any]:
    if settings.deploy_server_url is None:
        logger.info(
            "%s version %s is the registry's %s; a running `kaizen serve` picks it up by hot "
            "reload (set KAIZEN_DEPLOY_SERVER_URL to wait for one)",
            settings.model_name,
            version,
            alias,
        )
        return {"status": "recorded", "server": None}
    url = str(settings.deploy_server_url).rstrip("/")
    shown = _without_credentials(url)
    served = _served_versions(url, settings.model_name)
    if served is None:
        logger.warning(
            "no model server answers at %s; %s version %s is recorded as the registry's %s "
            "and any server started later serves it",
            shown,
            settings.model_name,
            version,
            alias,
        )
        return {"status": "recorded", "server": {"url": shown, "reachable": False}}
    deadline = time.monotonic() + timeout_s
    while served is None or served.get(alias) != version:
        if time.monotonic() >= deadline:
            raise DeployError(
                _not_served_message(shown, settings, version, alias, served, timeout_s)
            )
        time.sleep(poll_s)
        served = _served_versions(url, settings.model_name)
    logger.info(
        "the model server at %s serves %s version %s as %s",
        shown,
        settings.model_name,
        version,
        alias,
    )
    return {"status": "served", "server": {"url": shown, "reachable": True, "serves": served}}


def _not_served_message(
    url: str,
    settings: Settings,
    version: int,
    alias: str,
    served: dict[str, int] | None,
    timeout_s: float,
) -> str:
    if served is None:
        seen = "it stopped answering"
    else:
        seen = ", ".join(f"{name} {number or 'none'}" for name, number in sorted(served.items()))
        seen = f"it serves {seen or 'nothing'}"
    hint = (
        " (a server started with --no-canary never loads a challenger)"
        if alias == "challenger"
        else ""
    )
    return (
        f"the model server at {url} did not serve {settings.model_name} version {version} as "
        f"{alias} within {timeout_s:g}s: {seen}{hint}. A version that fails to load is logged "
        f"in the server's log ({settings.logs_dir}/serve-<port>.log) and counted in "
        "kaizen_serving_reload_failures_total"
    )


def _served_versions(url: str, model_name: str) -> dict[str, int] | None:
    """``{"champion": 3, "challenger": 4}`` from the server's ``/metrics``; None if it is down."""
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5.0) as answer:
            text = answer.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError):
        return None
    served: dict[str, int] = {}
    for match in _GAUGE_LINE.finditer(text):
        labels = dict(_LABEL.findall(match["labels"]))
        if labels.get("model_name") != model_name or "variant" not in labels:
            continue
        try:
            served[labels["variant"]] = int(float(match["value"]))
        except ValueError:
            continue
    return served


def _without_credentials(url: str) -> str:
    """``url`` without a user:password part, for messages and the record."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))
