"""Facts with one home: the pipeline, the components, the trainer and the trial program agree.

Each fact below once lived in several places and drifted (``epochs`` was 20 in the trainer
and 15 in the pipeline). Now they derive from one definition; these tests fail when a copy
appears that disagrees.
"""

from __future__ import annotations

import dataclasses
import inspect

import yaml

from kaizen.pipeline.compiler import TRAINING_PIPELINE_YAML
from kaizen.platform.names import DEFAULT_MODEL_NAME, DEFAULT_PIPELINE_NAME
from kaizen.platform.settings import Settings
from kaizen.training.model import DEFAULT_HYPERPARAMETERS, SEARCHABLE, HyperParameters
from kaizen.training.trial import build_parser


def _pipeline_defaults() -> dict[str, object]:
    from pipelines.training_pipeline import training_pipeline

    signature = inspect.signature(training_pipeline.pipeline_func)
    return {name: parameter.default for name, parameter in signature.parameters.items()}


def test_the_pipeline_defaults_are_the_trainers_hyperparameter_defaults() -> None:
    defaults = _pipeline_defaults()
    for field in dataclasses.fields(HyperParameters):
        assert defaults[field.name] == getattr(DEFAULT_HYPERPARAMETERS, field.name), field.name


def test_the_compiled_yaml_carries_the_same_defaults() -> None:
    spec = next(yaml.safe_load_all(TRAINING_PIPELINE_YAML.read_text()))
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    for field in dataclasses.fields(HyperParameters):
        assert parameters[field.name]["defaultValue"] == getattr(
            DEFAULT_HYPERPARAMETERS, field.name
        ), f"{field.name}: recompile with `kaizen compile`"


def test_the_trial_program_defaults_are_the_trainers() -> None:
    args = build_parser().parse_args(
        ["--train-data", "t", "--validation-data", "v", "--output-dir", "o"]
    )
    for field in dataclasses.fields(HyperParameters):
        assert getattr(args, field.name) == getattr(DEFAULT_HYPERPARAMETERS, field.name)


def test_the_tune_component_returns_exactly_the_searchable_hyperparameters() -> None:
    from components.train_model import train_model
    from components.tune_model import tune_model

    outputs = tune_model.component_spec.outputs or {}
    returned = [name for name in outputs if name not in ("tuning_result", "best_metrics")]
    assert returned == list(SEARCHABLE)
    # and train_model takes every hyperparameter as an input
    inputs = train_model.component_spec.inputs or {}
    assert {field.name for field in dataclasses.fields(HyperParameters)} <= set(inputs)


def test_names_default_from_one_place() -> None:
    from kaizen.pipeline.store import upload_pipeline
    from kaizen.registry import EXPERIMENT_NAME
    from kaizen.serving.client import DEFAULT_MODEL
    from kaizen.serving.server import ServingConfig
    from pipelines.training_pipeline import training_pipeline

    settings = Settings()
    assert settings.model_name == DEFAULT_MODEL_NAME == ServingConfig().model_name
    assert DEFAULT_MODEL == DEFAULT_MODEL_NAME
    assert settings.pipeline_name == DEFAULT_PIPELINE_NAME == EXPERIMENT_NAME
    assert training_pipeline.name == DEFAULT_PIPELINE_NAME
    assert inspect.signature(upload_pipeline).parameters["name"].default == DEFAULT_PIPELINE_NAME
