"""The GitHub Actions workflows and the Jenkinsfile keep the rules docs/ci.md states.

actionlint (with shellcheck on every run: step) and zizmor run as subprocesses on the real
files and must report nothing; the same tools, and this suite's own rule checker, must report
a deliberately bad workflow, so none of these checks passes by looking away.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflows.rules import (
    jenkins_stages,
    jenkinsfile_problems,
    job_run_text,
    load_workflow,
    pins,
    workflow_problems,
)

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / ".github" / "workflows"
JENKINSFILE = ROOT / "Jenkinsfile"
CI_DOC = ROOT / "docs" / "ci.md"
BIN = Path(sys.executable).parent
WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))

BAD_WORKFLOW = """\
name: greet
on:
  issues:
permissions:
  contents: read
jobs:
  greet:
    runs-on: ubuntu-24.04
    timeout-minutes: 5
    steps:
      - uses: actions/checkout@v4
        with:
          persist-credentials: false
      - run: echo "Thanks for ${{ github.event.issue.title }}"
"""


def _tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} is not beside {sys.executable}: pip install -e '.[dev]'"
    return str(path)


def _actionlint(*files: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("actionlint"), "-shellcheck", _tool("shellcheck"), "-pyflakes", "", "-oneline"]
        + [str(f) for f in files],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


def _zizmor(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_tool("zizmor"), "--offline", "--persona", "pedantic", "--format", "json", str(target)],
        capture_output=True,
        text=True,
        check=False,
    )


def _doc_table(heading: str) -> list[list[str]]:
    """The rows of the first table under ``## heading`` in docs/ci.md, cells stripped."""
    text = CI_DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)
    assert len(section) == 2, f"docs/ci.md has no section '## {heading}'"
    rows = []
    for line in section[1].split("\n## ", 1)[0].splitlines():
        if line.startswith("|") and not re.match(r"^\|[\s|:-]+\|$", line):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows[1:]  # the header row


def _code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_the_four_workflows_exist() -> None:
    assert {path.name for path in WORKFLOW_FILES} == {
        "ci.yml",
        "cd.yml",
        "retrain.yml",
        "e2e-kind.yml",
    }


def test_actionlint_with_shellcheck_reports_nothing() -> None:
    result = _actionlint(*WORKFLOW_FILES)

    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck_reports_nothing_on_the_scripts_the_workflows_call() -> None:
    scripts = sorted((ROOT / ".github" / "scripts").glob("*.sh"))
    result = subprocess.run(
        [_tool("shellcheck"), *map(str, scripts)], capture_output=True, text=True, check=False
    )

    assert scripts and result.returncode == 0, result.stdout + result.stderr


def test_zizmor_offline_reports_nothing() -> None:
    result = _zizmor(ROOT / ".github")

    findings = json.loads(result.stdout or "[]")
    assert result.returncode == 0 and findings == [], result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOW_FILES, ids=lambda path: path.name)
def test_every_workflow_keeps_the_hardening_rules(workflow: Path) -> None:
    assert workflow_problems(workflow) == []


def test_a_bad_workflow_is_reported_by_every_check(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "greet.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text(BAD_WORKFLOW)

    linted = _actionlint(bad, cwd=tmp_path)
    audited = _zizmor(tmp_path / ".github")
    problems = workflow_problems(bad)

    assert linted.returncode != 0
    assert '"github.event.issue.title" is potentially untrusted' in linted.stdout
    assert audited.returncode != 0
    identities = {finding["ident"] for finding in json.loads(audited.stdout)}
    assert {"template-injection", "unpinned-uses"} <= identities, audited.stdout
    assert any("`uses: actions/checkout@v4` is not pinned" in p for p in problems), problems
    assert any("an expression inside run:" in p for p in problems), problems


def test_the_rule_checker_reports_permissions_timeouts_triggers_and_credentials(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "release.yml"
    bad.write_text(
        """\
name: release
on: [pull_request_target]
permissions: write-all
jobs:
  publish:
    runs-on: ubuntu-24.04
    permissions:
      contents: write
    steps:
      - uses: actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1 # v7.0.1
"""
    )

    problems = "\n".join(workflow_problems(bad))

    assert "pull_request_target" in problems
    assert "top-level permissions must be exactly contents: read, got 'write-all'" in problems
    assert "job publish: timeout-minutes must be a positive integer, got None" in problems
    assert "permission contents: write is not one docs/ci.md allows" in problems
    assert "checkout without persist-credentials: false" in problems


def test_every_pin_is_the_one_docs_ci_lists() -> None:
    listed = {
        (_code_spans(action)[0], _code_spans(version)[0], _code_spans(commit)[0])
        for action, version, commit, *_ in _doc_table("Pinned actions")
    }
    used = {(p.action, p.version, p.sha) for path in WORKFLOW_FILES for p in pins(path)}

    assert used, "no pinned uses: found"
    assert used == listed, f"in workflows only: {used - listed}; in docs only: {listed - used}"


def test_ci_cancels_superseded_runs_and_cd_never_cancels_a_delivery() -> None:
    ci = load_workflow(WORKFLOWS / "ci.yml")
    cd = load_workflow(WORKFLOWS / "cd.yml")

    assert ci["concurrency"]["cancel-in-progress"] is True
    assert "github.ref" in ci["concurrency"]["group"]
    assert cd["concurrency"]["cancel-in-progress"] is False


def test_docs_only_changes_skip_the_heavy_jobs() -> None:
    ci = load_workflow(WORKFLOWS / "ci.yml")
    cd = load_workflow(WORKFLOWS / "cd.yml")

    for heavy in ("test", "images"):
        assert ci["jobs"][heavy]["if"] == "needs.changes.outputs.code == 'true'"
    # The docs that tests compare with the code are not "docs only".
    classify = job_run_text(ci["jobs"]["changes"])
    assert "docs/(configuration|ci)\\.md" in classify
    assert cd["on"]["push"]["paths-ignore"] == ["docs/**", "**.md"]


def test_retrain_runs_on_schedule_dispatch_and_repository_dispatch() -> None:
    retrain = load_workflow(WORKFLOWS / "retrain.yml")
    submit = retrain["jobs"]["submit"]

    assert set(retrain["on"]) == {"schedule", "workflow_dispatch", "repository_dispatch"}
    assert submit["concurrency"] == {
        "group": "retrain-${{ needs.fingerprint.outputs.run_name }}",
        "cancel-in-progress": False,
    }
    assert 'kaizen submit --run-name "$RUN_NAME"' in job_run_text(submit)


def test_secrets_reach_only_jobs_in_a_protected_environment_or_the_notifier() -> None:
    for path in WORKFLOW_FILES:
        for job_id, job in load_workflow(path)["jobs"].items():
            text = json.dumps(job)
            secrets = set(re.findall(r"secrets\.(\w+)", text)) - {"GITHUB_TOKEN"}
            if secrets and job_id != "notify":
                assert job.get("environment") in ("cluster", "production"), (
                    f"{path.name}: job {job_id} reads {sorted(secrets)} outside an environment"
                )


@pytest.mark.parametrize(
    "row",
    _doc_table("What each job runs"),
    ids=lambda row: " ".join(_code_spans(row[0]) + _code_spans(row[1])),
)
def test_each_job_runs_what_docs_ci_promises(row: list[str]) -> None:
    (source,) = _code_spans(row[0])
    (job,) = _code_spans(row[1])
    promised = _code_spans(row[2])
    if source == "Jenkinsfile":
        stages = jenkins_stages(JENKINSFILE.read_text(encoding="utf-8"))
        assert job in stages, f"Jenkinsfile has no stage {job!r}; it has {sorted(stages)}"
        body = stages[job]
    else:
        jobs = load_workflow(WORKFLOWS / source)["jobs"]
        assert job in jobs, f"{source} has no job {job!r}; it has {sorted(jobs)}"
        body = job_run_text(jobs[job])
    missing = [command for command in promised if command not in body]

    assert promised and not missing, f"{source} {job} does not run {missing}"


def test_docs_ci_lists_every_job_and_stage() -> None:
    rows = _doc_table("What each job runs")
    listed = {(_code_spans(row[0])[0], _code_spans(row[1])[0]) for row in rows}
    actual = {(path.name, job) for path in WORKFLOW_FILES for job in load_workflow(path)["jobs"]}
    actual |= {
        ("Jenkinsfile", stage) for stage in jenkins_stages(JENKINSFILE.read_text(encoding="utf-8"))
    }

    assert listed == actual, f"not in docs/ci.md: {actual - listed}; gone: {listed - actual}"


def test_the_jenkinsfile_is_the_same_chain() -> None:
    stages = jenkins_stages(JENKINSFILE.read_text(encoding="utf-8"))

    assert jenkinsfile_problems(JENKINSFILE) == []
    assert list(stages) == ["Test", "Images", "Compile", "Upload", "Submit", "Promote"]


def test_the_jenkinsfile_checker_reports_groovy_interpolation_and_a_missing_post(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "Jenkinsfile"
    bad.write_text(
        """\
pipeline {
    agent any
    stages {
        stage('Upload') {
            steps { sh "kaizen upload --token ${env.KFP_TOKEN}" }
        }
    }
}
"""
    )

    problems = "\n".join(jenkinsfile_problems(bad))

    assert "Jenkinsfile:5: sh with a double-quoted string" in problems
    assert "no timeout(time: ...)" in problems
    assert "no post { failure { ... } } notification" in problems


def _kaizen_calls(text: str) -> list[tuple[str, list[str]]]:
    """Each ``kaizen <command> ...`` in shell text, with the long options it passes."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [
        (match.group(1), re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", match.group(2)))
        for match in re.finditer(
            r"(?:^|\$\(|&&|\|\||;|sh ')\s*(?:[\w.-]*/)*kaizen ([a-z]+)([^\n;|&]*)",
            joined,
            flags=re.MULTILINE,
        )
    ]


def test_every_kaizen_option_the_workflows_pass_exists() -> None:
    import typer.main

    from kaizen.cli import app

    cli = typer.main.get_command(app)
    texts = {
        path.name: "\n".join(job_run_text(job) for job in load_workflow(path)["jobs"].values())
        for path in WORKFLOW_FILES
    }
    texts["Jenkinsfile"] = JENKINSFILE.read_text(encoding="utf-8")
    unknown = []
    for source, text in texts.items():
        for command, options in _kaizen_calls(text):
            known = cli.commands.get(command)  # type: ignore[attr-defined]
            if known is None:
                unknown.append(f"{source}: kaizen {command}")
                continue
            names = {name for param in known.params for name in param.opts}
            unknown += [f"{source}: kaizen {command} {o}" for o in options if o not in names]

    assert unknown == [], "not options of the CLI: " + "; ".join(unknown)
