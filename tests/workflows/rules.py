"""The hardening rules of docs/ci.md, checked on a workflow file or a Jenkinsfile.

``workflow_problems`` and ``jenkinsfile_problems`` return one sentence per broken rule
(file, line or job, what is wrong); an empty list means the file keeps every rule. The tests
run them on the repository's files and on deliberately bad ones, so a broken rule is seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: `uses:` with a full commit SHA and the release it is, as Dependabot writes it.
PINNED_USES = re.compile(
    r"^\s*(?:-\s+)?uses:\s*(?P<action>[\w.-]+/[\w./-]+)@(?P<sha>[0-9a-f]{40})"
    r"\s+#\s*(?P<version>v\d+\.\d+\.\d+)\s*$"
)
ANY_USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<target>\S+)")
#: The only additions to `contents: read` a job may ask for, each with its one use.
ALLOWED_JOB_PERMISSIONS = {
    "contents": "read",
    "packages": "write",  # push images to GHCR
    "id-token": "write",  # OIDC: sign build provenance
    "attestations": "write",  # store that provenance
}
FORBIDDEN_TRIGGERS = ("pull_request_target", "workflow_run")


@dataclass(frozen=True)
class Pin:
    """One pinned `uses:` line."""

    action: str
    sha: str
    version: str
    line: int


def load_workflow(path: Path) -> dict[str, Any]:
    """A workflow as data; YAML 1.1 reads the key ``on`` as True, put back as "on"."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a workflow (a mapping at the top), got {type(data)}")
    if True in data:
        data["on"] = data.pop(True)
    return data


def pins(path: Path) -> list[Pin]:
    """Every `uses:` line pinned by SHA, with its version comment."""
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = PINNED_USES.match(line)
        if match:
            found.append(Pin(match["action"], match["sha"], match["version"], number))
    return found


def job_run_text(job: dict[str, Any]) -> str:
    """Every ``run:`` script of a job, one after the other."""
    return "\n".join(str(step.get("run", "")) for step in job.get("steps", []) or [])


def workflow_problems(path: Path) -> list[str]:
    """Each hardening rule ``path`` breaks, as a sentence naming the place."""
    problems: list[str] = []
    name = path.name
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        used = ANY_USES.match(line)
        if used and not used["target"].startswith("./") and not PINNED_USES.match(line):
            problems.append(
                f"{name}:{number}: `uses: {used['target']}` is not pinned to a 40-hex commit "
                "SHA with a `# vX.Y.Z` comment"
            )
    workflow = load_workflow(path)
    triggers = workflow.get("on")
    trigger_names = set(triggers) if isinstance(triggers, dict | list) else {triggers}
    for forbidden in FORBIDDEN_TRIGGERS:
        if forbidden in trigger_names:
            problems.append(f"{name}: the trigger {forbidden} runs with secrets on others' code")
    if workflow.get("permissions") != {"contents": "read"}:
        problems.append(
            f"{name}: top-level permissions must be exactly contents: read, "
            f"got {workflow.get('permissions')!r}"
        )
    jobs = workflow.get("jobs") or {}
    if not jobs:
        problems.append(f"{name}: no jobs")
    for job_id, job in jobs.items():
        where = f"{name}: job {job_id}"
        timeout = job.get("timeout-minutes")
        if not isinstance(timeout, int) or timeout <= 0:
            problems.append(f"{where}: timeout-minutes must be a positive integer, got {timeout!r}")
        granted = job.get("permissions", {})
        if not isinstance(granted, dict):
            problems.append(f"{where}: permissions must list scopes, got {granted!r}")
            granted = {}
        for scope, level in granted.items():
            if level != "none" and ALLOWED_JOB_PERMISSIONS.get(scope) != level:
                problems.append(
                    f"{where}: permission {scope}: {level} is not one docs/ci.md allows "
                    f"(only {', '.join(f'{s}: {v}' for s, v in ALLOWED_JOB_PERMISSIONS.items())})"
                )
        for index, step in enumerate(job.get("steps", []) or [], start=1):
            label = step.get("name") or step.get("uses") or f"step {index}"
            if "${{" in str(step.get("run", "")):
                problems.append(
                    f"{where}, {label!r}: an expression inside run: (pass it through env:)"
                )
            checkout = str(step.get("uses", "")).startswith("actions/checkout@")
            if checkout and (step.get("with") or {}).get("persist-credentials") is not False:
                problems.append(f"{where}, {label!r}: checkout without persist-credentials: false")
    return problems


def jenkins_stages(text: str) -> dict[str, str]:
    """Stage name to the text of its body (up to the next stage or the post section)."""
    starts = [(m.start(), m.group(1)) for m in re.finditer(r"stage\('([^']+)'\)", text)]
    post = re.search(r"^\s{4}post\s*\{", text, flags=re.MULTILINE)
    end_of_stages = post.start() if post else len(text)
    bodies = {}
    for index, (start, stage) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else end_of_stages
        bodies[stage] = text[start:end]
    return bodies


def jenkinsfile_problems(path: Path) -> list[str]:
    """Each rule the declarative Jenkinsfile breaks, as a sentence."""
    text = path.read_text(encoding="utf-8")
    problems = []
    if not re.match(r"\s*(//[^\n]*\n\s*)*pipeline\s*\{", text):
        problems.append(f"{path.name}: not a declarative pipeline (pipeline {{ ... }} at the top)")
    if not re.search(r"timeout\(time:\s*\d+", text):
        problems.append(f"{path.name}: no timeout(time: ...) in options")
    if not re.search(r"post\s*\{[^}]*failure\s*\{", text, flags=re.DOTALL):
        problems.append(f"{path.name}: no post {{ failure {{ ... }} }} notification")
    # Groovy expands "..." itself: a credential would be in the command line and the log.
    for number, line in enumerate(text.splitlines(), start=1):
        if re.search(r'\bsh\s*\(?\s*"', line):
            problems.append(
                f"{path.name}:{number}: sh with a double-quoted string; use single quotes so "
                "the shell, not Groovy, expands variables"
            )
    if not jenkins_stages(text):
        problems.append(f"{path.name}: no stage('...')")
    return problems
