"""The compiled pipeline's parameters, and values checked against them before a run starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from kaizen.pipeline.parameters import (
    ParameterError,
    PipelineParameter,
    parameters_from_yaml,
    parse_assignments,
    pipeline_parameters,
    read_pipeline_parameters,
    resolve_arguments,
)
from kaizen.pipeline.store import PipelineSpecError

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "pipelines" / "training_pipeline.yaml"


def spec_with(parameters: dict[str, Any]) -> dict[str, Any]:
    return {"pipelineInfo": {"name": "p"}, "root": {"inputDefinitions": {"parameters": parameters}}}


@pytest.fixture(scope="module")
def committed() -> dict[str, PipelineParameter]:
    return read_pipeline_parameters(COMMITTED)


def test_the_committed_pipeline_declares_its_inputs_with_types_and_defaults(
    committed: dict[str, PipelineParameter],
) -> None:
    assert {"epochs", "drift", "source_uri", "tuning_backend", "seed"} <= set(committed)
    assert committed["epochs"].parameter_type == "NUMBER_INTEGER"
    assert committed["epochs"].default == 15 and isinstance(committed["epochs"].default, int)
    assert committed["drift"].parameter_type == "NUMBER_DOUBLE"
    assert committed["source_uri"].parameter_type == "STRING"
    assert committed["epochs"].description == "maximum training epochs of the final training."
    assert not any(p.required for p in committed.values())


def test_bytes_and_file_readers_agree(committed: dict[str, PipelineParameter]) -> None:
    assert parameters_from_yaml(COMMITTED.read_bytes(), source="stored") == committed


def test_strings_become_the_json_values_kfp_checks(
    committed: dict[str, PipelineParameter],
) -> None:
    resolved = resolve_arguments(
        committed,
        {"epochs": "20", "drift": "0.25", "source_uri": "s3://bucket/tx.csv", "seed": "-3"},
    )
    assert resolved == {"epochs": 20, "drift": 0.25, "source_uri": "s3://bucket/tx.csv", "seed": -3}
    assert isinstance(resolved["epochs"], int) and isinstance(resolved["drift"], float)


def test_an_integer_string_is_a_number_for_a_double(
    committed: dict[str, PipelineParameter],
) -> None:
    assert resolve_arguments(committed, {"drift": "1"}) == {"drift": 1.0}


def test_a_string_parameter_keeps_text_that_looks_like_json(
    committed: dict[str, PipelineParameter],
) -> None:
    assert resolve_arguments(committed, {"source_uri": "123"}) == {"source_uri": "123"}


def test_unknown_name_lists_the_valid_names_and_the_closest(
    committed: dict[str, PipelineParameter],
) -> None:
    with pytest.raises(ParameterError) as caught:
        resolve_arguments(committed, {"epoch": "3"}, pipeline="pipeline 'kaizen-training'")
    message = str(caught.value)
    assert "pipeline 'kaizen-training' has no parameter 'epoch'" in message
    assert "did you mean 'epochs'?" in message
    assert "valid names: batch_size, " in message and "customers, " in message
    assert message.endswith("webhook_url")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("epochs", "ten", "expects an integer (NUMBER_INTEGER), got 'ten'"),
        ("epochs", "2.5", "expects an integer (NUMBER_INTEGER), got '2.5'"),
        ("drift", "lots", "expects a number (NUMBER_DOUBLE), got 'lots'"),
        ("drift", "nan", "JSON has no NaN or infinity"),
    ],
)
def test_wrong_type_names_the_expected_type(
    committed: dict[str, PipelineParameter], name: str, value: str, expected: str
) -> None:
    with pytest.raises(ParameterError, match=re.escape(expected)):
        resolve_arguments(committed, {name: value})


def test_every_problem_is_reported_at_once(committed: dict[str, PipelineParameter]) -> None:
    with pytest.raises(ParameterError) as caught:
        resolve_arguments(committed, {"epochs": "x", "nope": "1", "drift": "y"})
    assert len(caught.value.problems) == 3


def test_booleans_lists_and_structs() -> None:
    parameters = pipeline_parameters(
        spec_with(
            {
                "dry": {"parameterType": "BOOLEAN"},
                "tags": {"parameterType": "LIST"},
                "extra": {"parameterType": "STRUCT"},
            }
        )
    )
    resolved = resolve_arguments(
        parameters, {"dry": "TRUE", "tags": '["a", 1]', "extra": '{"k": 2}'}
    )
    assert resolved == {"dry": True, "tags": ["a", 1], "extra": {"k": 2}}
    with pytest.raises(ParameterError, match="expects true or false"):
        resolve_arguments(parameters, {"dry": "yes", "tags": "[]", "extra": "{}"})
    with pytest.raises(ParameterError, match=r"expects a JSON list \(LIST\).*not JSON"):
        resolve_arguments(parameters, {"dry": "true", "tags": "a,b", "extra": "{}"})
    with pytest.raises(ParameterError, match=r"expects a JSON object \(STRUCT\)"):
        resolve_arguments(parameters, {"dry": "true", "tags": "[]", "extra": "[1]"})


def test_a_required_parameter_left_out_is_named() -> None:
    parameters = pipeline_parameters(spec_with({"threshold": {"parameterType": "NUMBER_DOUBLE"}}))
    assert parameters["threshold"].required
    with pytest.raises(ParameterError, match=r"'threshold' of .* is required .*-p threshold="):
        resolve_arguments(parameters, {})


def test_literal_parameters_accept_only_their_values() -> None:
    parameters = pipeline_parameters(
        spec_with(
            {
                "backend": {
                    "parameterType": "STRING",
                    "literals": ["local", "katib"],
                    "defaultValue": "local",
                    "isOptional": True,
                }
            }
        )
    )
    assert resolve_arguments(parameters, {"backend": "katib"}) == {"backend": "katib"}
    with pytest.raises(ParameterError, match="accepts only 'local', 'katib'; got 'kube'"):
        resolve_arguments(parameters, {"backend": "kube"})


def test_python_values_from_library_callers_are_checked_by_kind(
    committed: dict[str, PipelineParameter],
) -> None:
    assert resolve_arguments(committed, {"epochs": 4, "drift": 1}) == {"epochs": 4, "drift": 1.0}
    with pytest.raises(ParameterError, match="expects an integer"):
        resolve_arguments(committed, {"epochs": True})
    with pytest.raises(ParameterError, match="expects a string"):
        resolve_arguments(committed, {"source_uri": 3})


def test_a_pipeline_without_inputs_refuses_any_name() -> None:
    with pytest.raises(ParameterError, match="valid names: none: it takes no parameters"):
        resolve_arguments(pipeline_parameters({"root": {}}), {"x": "1"})


def test_assignments_need_a_name_and_an_equals_sign() -> None:
    assert parse_assignments(["a=1", "b==2", "c="]) == {"a": "1", "b": "=2", "c": ""}
    with pytest.raises(ParameterError) as caught:
        parse_assignments(["epochs", "=3", "a=1", "a=2"])
    assert caught.value.problems == [
        "expected NAME=VALUE, got 'epochs'",
        "expected NAME=VALUE, got '=3'",
        "parameter 'a' is given twice",
    ]


def test_malformed_input_definitions_name_the_source_and_field() -> None:
    with pytest.raises(ParameterError, match=r"p\.yaml: root\.inputDefinitions\.parameters\.x"):
        pipeline_parameters(spec_with({"x": {"type": "int"}}), source="p.yaml")
    with pytest.raises(ParameterError, match="stored is not a compiled KFP pipeline spec"):
        parameters_from_yaml(b"- a list\n", source="stored")


def test_a_file_that_is_not_a_pipeline_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.yaml"
    path.write_text("hello: world\n")
    with pytest.raises(PipelineSpecError, match="missing top-level"):
        read_pipeline_parameters(path)
