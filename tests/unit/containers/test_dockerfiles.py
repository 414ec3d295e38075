"""What each Dockerfile promises: base as an argument, non-root, tini, nothing built at run time."""

from __future__ import annotations

import re

import pytest

from tests.support.containers import DOCKER_DIR, REPO_ROOT, Dockerfile, parse_dockerfile

IMAGES = {"component": "pipeline", "serving": "serving"}  # image -> the extra it installs


@pytest.fixture(params=sorted(IMAGES), scope="module")
def image(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _dockerfile(name: str) -> Dockerfile:
    return parse_dockerfile(DOCKER_DIR / f"{name}.Dockerfile")


def test_every_stage_starts_from_the_base_image_argument(image: str) -> None:
    dockerfile = _dockerfile(image)

    declared = [arg.arguments.split("=", 1)[0] for arg in dockerfile.global_args]
    assert declared == ["BASE_IMAGE"]
    assert [stage.base for stage in dockerfile.stages] == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert dockerfile.stages[0].name == "builder"


def test_the_builder_installs_the_images_extra_into_a_venv(image: str) -> None:
    builder = _dockerfile(image).stage("builder")
    runs = " ".join(run.arguments for run in builder.all("RUN"))

    assert "python3 -m venv --without-pip /opt/venv" in runs
    assert f"pyproject_requirements.py pyproject.toml {IMAGES[image]} " in runs
    assert "--python /opt/venv/bin/python install --no-compile --no-deps --root /stage ." in runs


def test_the_final_stage_runs_as_uid_10001_under_tini(image: str) -> None:
    final = _dockerfile(image).final

    assert final.last("USER").arguments == "10001:10001"
    assert "--uid 10001" in " ".join(run.arguments for run in final.all("RUN"))
    assert final.last("ENTRYPOINT").exec_form() == ["/usr/bin/tini", "--"]
    copied = {tuple(copy.operands()): copy.flags().get("from") for copy in final.all("COPY")}
    assert copied[("/usr/bin/tini-static", "/usr/bin/tini")] == "builder"


def test_the_final_stage_takes_only_the_venv_and_tini_from_the_builder(image: str) -> None:
    final = _dockerfile(image).final

    from_builder = {
        copy.operands()[0] for copy in final.all("COPY") if copy.flags().get("from") == "builder"
    }
    # the dependencies, then Kaizen on its own (a layer a code change replaces), then tini
    assert from_builder == {"/opt/venv", "/stage/opt/venv", "/usr/bin/tini-static"}
    for run in final.all("RUN"):
        assert not re.search(r"\b(pip|apt-get|apt|compileall|gcc|make)\b", run.arguments), run


def test_the_feature_repo_is_where_the_settings_point(image: str) -> None:
    final = _dockerfile(image).final
    env = " ".join(e.arguments for e in final.all("ENV"))

    assert final.last("WORKDIR").arguments == "/app"
    assert "KAIZEN_FEATURE_REPO=/app/feature_repo" in env
    assert ("feature_repo", "./feature_repo") in [tuple(c.operands()) for c in final.all("COPY")]


def test_the_component_image_has_the_katib_experiments_the_pipeline_names() -> None:
    final = _dockerfile("component").final
    pipeline = (REPO_ROOT / "pipelines/training_pipeline.py").read_text()

    # The pipeline's defaults are paths relative to the working directory.
    assert '"katib/fraud-mlp-tpe.yaml"' in pipeline
    assert ("katib", "./katib") in [tuple(c.operands()) for c in final.all("COPY")]
    assert final.last("HEALTHCHECK").arguments == "NONE"


def test_the_serving_image_probes_readiness_on_the_port_it_serves() -> None:
    final = _dockerfile("serving").final
    port = final.last("EXPOSE").arguments
    healthcheck = final.last("HEALTHCHECK")
    probe = healthcheck.arguments.split("CMD", 1)[1].strip()
    command = final.last("CMD").exec_form()

    assert f"http://127.0.0.1:{port}/v2/health/ready" in probe
    assert probe.startswith('["python", "-c"')  # no curl in the image
    assert set(healthcheck.flags()) >= {"interval", "timeout", "start-period", "retries"}
    assert command[:2] == ["kaizen", "serve"]
    assert command[command.index("--port") + 1] == port
    assert command[command.index("--host") + 1] == "0.0.0.0"
