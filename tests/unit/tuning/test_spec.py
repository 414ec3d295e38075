"""Katib Experiment specs: the real files, each refusal and its message, overrides, substitution."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kaizen.training.model import HyperParameters
from kaizen.training.trial import build_parser, format_metrics_line
from kaizen.tuning.spec import (
    DEFAULT_METRICS_FORMAT,
    MAX_EXPERIMENT_NAME_LENGTH,
    ExperimentSpecError,
    ParameterSpace,
    apply_overrides,
    dump_experiment,
    load_experiment,
    metrics_formats,
    replace_flag,
    search_parameters,
    substitute_trial_parameters,
    trial_container,
    validate_experiment,
)

KATIB = Path(__file__).resolve().parents[3] / "katib"
NARROW = KATIB / "fraud-mlp-tpe.yaml"
WIDE = KATIB / "fraud-mlp-tpe-wide.yaml"
SOURCE = "katib/bad.yaml"

ASSIGNMENTS = {
    "learning_rate": 0.001,
    "num_layers": 2,
    "units": 64,
    "dropout": 0.1,
    "batch_size": 256,
}


@pytest.fixture(scope="module")
def loaded() -> dict[str, Any]:
    return load_experiment(NARROW)


@pytest.fixture
def body(loaded: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(loaded)


def refusal(body: dict[str, Any]) -> str:
    with pytest.raises(ExperimentSpecError) as caught:
        validate_experiment(body, SOURCE)
    return str(caught.value)


def param(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in body["spec"]["parameters"] if p["name"] == name)


def container(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]["containers"][0]


# --------------------------------------------------------------------- the real files


def test_both_real_files_load_and_are_named_after_their_file() -> None:
    for path in (NARROW, WIDE):
        body = load_experiment(path)
        assert body["metadata"]["name"] == path.stem
        assert body["spec"]["objective"]["objectiveMetricName"] == "val_roc_auc"
        assert body["spec"]["algorithm"]["algorithmName"] == "tpe"
        assert body["spec"]["earlyStopping"]["algorithmName"] == "medianstop"


def test_the_narrow_search_space_parses_to_typed_values(loaded: dict[str, Any]) -> None:
    assert search_parameters(loaded) == [
        ParameterSpace("learning_rate", "double", 0.0005, 0.01, distribution="logUniform"),
        ParameterSpace("num_layers", "int", 1, 3),
        ParameterSpace("units", "int", 16, 128, step=16),
        ParameterSpace("dropout", "double", 0.0, 0.4),
        ParameterSpace("batch_size", "discrete", list=(128, 256, 512)),
    ]
    assert search_parameters(loaded)[0].log
    assert search_parameters(loaded)[2].grid_values() == (16, 32, 48, 64, 80, 96, 112, 128)


def _strip_ranges_and_budget(body: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(body)
    del stripped["metadata"]["name"]
    for key in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount"):
        stripped["spec"].pop(key)
    for parameter in stripped["spec"]["parameters"]:
        for bound in ("min", "max", "list"):
            parameter["feasibleSpace"].pop(bound, None)
    return stripped


def test_wide_file_differs_from_the_narrow_one_only_in_name_ranges_and_budget() -> None:
    narrow, wide = load_experiment(NARROW), load_experiment(WIDE)
    assert _strip_ranges_and_budget(wide) == _strip_ranges_and_budget(narrow)
    assert wide["spec"]["maxTrialCount"] > narrow["spec"]["maxTrialCount"]
    wider = 0
    for small, large in zip(search_parameters(narrow), search_parameters(wide), strict=True):
        if small.list:
            assert set(small.list) <= set(large.list), small.name
            wider += len(large.list) > len(small.list)
        else:
            assert large.min <= small.min and large.max >= small.max, small.name  # type: ignore[operator]
            wider += (large.min, large.max) != (small.min, small.max)
    assert wider == 5  # every parameter is searched more widely in the re-tune round


@pytest.mark.parametrize("path", [NARROW, WIDE], ids=["narrow", "wide"])
def test_every_corner_of_the_search_space_is_accepted_by_the_trial_program(path: Path) -> None:
    body = load_experiment(path)
    spaces = search_parameters(body)
    corners = [
        {s.name: (s.list[i] if s.list else (s.min, s.max)[i]) for s in spaces} for i in (0, -1)
    ]
    parser = build_parser()
    for assignments in corners:
        argv = substitute_trial_parameters(body, assignments)
        assert argv[:3] == ["python", "-m", "kaizen.training.trial"]
        args = parser.parse_args(argv[3:])
        HyperParameters(
            learning_rate=args.learning_rate,
            num_layers=args.num_layers,
            units=args.units,
            dropout=args.dropout,
            batch_size=args.batch_size,
            epochs=args.epochs,
            patience=args.patience,
            seed=args.seed,
        )


def test_the_metric_filter_reads_every_objective_metric_from_a_real_trial_line(
    loaded: dict[str, Any],
) -> None:
    objective = loaded["spec"]["objective"]
    line = format_metrics_line(
        {"best_epoch": 3, "epochs_run": 6},
        {"val_loss": 0.2, "val_roc_auc": 0.96, "val_pr_auc": 0.7, "val_accuracy": 0.97},
    )
    (pattern,) = metrics_formats(loaded)
    assert pattern == DEFAULT_METRICS_FORMAT
    found = {m.group(1): float(m.group(2)) for m in re.finditer(pattern, line)}
    wanted = [objective["objectiveMetricName"], *objective["additionalMetricNames"]]
    assert {name: found[name] for name in wanted} == {
        "val_roc_auc": 0.96,
        "val_accuracy": 0.97,
        "val_pr_auc": 0.7,
        "val_loss": 0.2,
    }


def test_yaml_round_trip_gives_the_same_body(loaded: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "fraud-mlp-tpe.yaml"
    path.write_text(dump_experiment(loaded), encoding="utf-8")
    again = load_experiment(path)
    assert again == loaded
    assert param(again, "learning_rate")["feasibleSpace"]["min"] == "0.0005"  # still a string


# ------------------------------------------------------------------ load_experiment


def test_load_refuses_a_name_that_is_not_the_file_name(
    loaded: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "other-name.yaml"
    path.write_text(dump_experiment(loaded), encoding="utf-8")
    with pytest.raises(ExperimentSpecError) as caught:
        load_experiment(path)
    assert str(caught.value) == (
        f"{path}: metadata.name: 'fraud-mlp-tpe' must equal the file name 'other-name' "
        "(one Experiment per file, named after it)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spec: [unclosed", "not valid YAML"),
        ("a: 1\na: 2\n", "duplicate key 'a' (the second would silently win)"),
        ("a: 1\n---\nb: 2\n", "expected one YAML document (one Experiment), found 2"),
        ("- just\n- a list\n", "expected a mapping (an Experiment), got ['just', 'a list'] (list)"),
    ],
    ids=["syntax", "duplicate-key", "two-documents", "not-a-mapping"],
)
def test_load_refuses_unreadable_yaml(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ExperimentSpecError, match=re.escape(expected)) as caught:
        load_experiment(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ExperimentSpecError) as caught:
        load_experiment(tmp_path / "missing.yaml")
    assert (
        str(caught.value)
        == f"{tmp_path / 'missing.yaml'}: cannot read the file: No such file or directory"
    )


# --------------------------------------------------------- validation: each refusal

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        node[last] = value

    return mutate


def _space(name: str, **space: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        param(body, name)["feasibleSpace"] = space

    return mutate


def _command(edit: Callable[[list[str]], list[str]]) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        container(body)["command"] = edit(container(body)["command"])

    return mutate


def _del(path: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = body
        for key in parents:
            node = node[key]
        del node[last]

    return mutate


def _add_unreferenced_parameter(body: dict[str, Any]) -> None:
    body["spec"]["parameters"].append(
        {"name": "momentum", "parameterType": "double", "feasibleSpace": {"min": "0", "max": "1"}}
    )


def _env_placeholder(body: dict[str, Any]) -> None:
    container(body)["env"] = [{"name": "LR", "value": "${trialParameters.learningRate}"}]


def _trial_parameter(index: int, **changes: Any) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        body["spec"]["trialTemplate"]["trialParameters"][index].update(changes)

    return mutate


def _drop_description(body: dict[str, Any]) -> None:
    del body["spec"]["trialTemplate"]["trialParameters"][1]["description"]


PS = "spec.parameters"
TT = "spec.trialTemplate"
POD = f"{TT}.trialSpec.spec.template.spec"

BAD_CASES: list[tuple[str, Mutation, str]] = [
    (
        "parallel-exceeds-max",
        _set("spec.parallelTrialCount", 9),
        "spec.parallelTrialCount (9) must not exceed spec.maxTrialCount (8)",
    ),
    (
        "failed-exceeds-max",
        _set("spec.maxFailedTrialCount", 9),
        "spec.maxFailedTrialCount (9) must not exceed spec.maxTrialCount (8)",
    ),
    (
        "budget-missing",
        _del("spec.maxFailedTrialCount"),
        "spec.maxFailedTrialCount: required: set it so the local executor and the cluster "
        "run the same budget",
    ),
    ("max-zero", _set("spec.maxTrialCount", 0), "spec.maxTrialCount: must be at least 1, got 0"),
    (
        "budget-not-an-int",
        _set("spec.maxTrialCount", "8"),
        "spec.maxTrialCount: Input should be a valid integer, got '8' (str)",
    ),
    (
        "unknown-algorithm",
        _set("spec.algorithm.algorithmName", "tpe2"),
        "spec.algorithm.algorithmName: unknown algorithm 'tpe2'; Katib has random, grid, tpe, "
        "multivariate-tpe, cmaes, sobol, bayesianoptimization, hyperband, enas, darts, pbt",
    ),
    (
        "nas-algorithm",
        _set("spec.algorithm.algorithmName", "darts"),
        "spec.algorithm.algorithmName: 'darts' is a neural architecture search algorithm",
    ),
    (
        "unknown-tpe-setting",
        _set("spec.algorithm.algorithmSettings", [{"name": "seed", "value": "1"}]),
        "spec.algorithm.algorithmSettings[0].name: unknown setting 'seed' for algorithm tpe; "
        "it accepts n_startup_trials, n_ei_candidates, random_state",
    ),
    (
        "negative-tpe-setting",
        _set("spec.algorithm.algorithmSettings", [{"name": "random_state", "value": "-1"}]),
        "spec.algorithm.algorithmSettings[0].value: random_state: must be an integer >= 0, "
        "got '-1'",
    ),
    (
        "unknown-early-stopping",
        _set("spec.earlyStopping.algorithmName", "hyperband"),
        "spec.earlyStopping.algorithmName: unknown early stopping algorithm 'hyperband'; "
        "Katib has medianstop",
    ),
    (
        "unknown-early-stopping-setting",
        _set("spec.earlyStopping.algorithmSettings", [{"name": "min_trials", "value": "2"}]),
        "spec.earlyStopping.algorithmSettings[0].name: unknown setting 'min_trials' for "
        "medianstop; it accepts min_trials_required, start_step",
    ),
    (
        "bad-start-step",
        _set("spec.earlyStopping.algorithmSettings", [{"name": "start_step", "value": "0"}]),
        "spec.earlyStopping.algorithmSettings[0].value: start_step must be an integer >= 1, "
        "got '0'",
    ),
    (
        "empty-double-range",
        _space("dropout", min="0.2", max="0.20"),
        f"{PS}[3].feasibleSpace: parameter 'dropout': empty range: min == max == 0.2 "
        "(nothing to search)",
    ),
    (
        "inverted-int-range",
        _space("num_layers", min="5", max="3"),
        f"{PS}[1].feasibleSpace: parameter 'num_layers': inverted range: min 5 > max 3",
    ),
    (
        "int-with-fractional-min",
        _space("num_layers", min="1.5", max="3"),
        f"{PS}[1].feasibleSpace.min: parameter 'num_layers': must be an integer, got '1.5'",
    ),
    (
        "int-with-fractional-step",
        _space("units", min="16", max="128", step="2.5"),
        f"{PS}[2].feasibleSpace.step: parameter 'units': must be an integer, got '2.5'",
    ),
    (
        "double-with-text-bound",
        _space("dropout", min="0", max="half"),
        f"{PS}[3].feasibleSpace.max: parameter 'dropout': must be a decimal number, got 'half'",
    ),
    (
        "double-bound-not-quoted",
        _space("dropout", min=0.0, max="0.4"),
        f"{PS}[3].feasibleSpace.min: Input should be a valid string (quote it in the YAML: "
        "Katib keeps these values as strings), got 0.0 (float)",
    ),
    (
        "discrete-with-text",
        _space("batch_size", list=["128", "big"]),
        f"{PS}[4].feasibleSpace.list[1]: parameter 'batch_size': 'big' is not a number "
        "(discrete lists hold numbers; use categorical for strings)",
    ),
    (
        "discrete-with-duplicates",
        _space("batch_size", list=["128", "256", "128"]),
        f"{PS}[4].feasibleSpace.list: parameter 'batch_size': duplicate values ['128']",
    ),
    (
        "categorical-empty-list",
        lambda b: param(b, "batch_size").update(
            parameterType="categorical", feasibleSpace={"list": []}
        ),
        f"{PS}[4].feasibleSpace.list: parameter 'batch_size': a categorical parameter needs a "
        "non-empty list",
    ),
    (
        "list-with-min",
        _space("batch_size", list=["128"], min="1"),
        f"{PS}[4].feasibleSpace.min: parameter 'batch_size': a discrete parameter takes a "
        "list, not min",
    ),
    (
        "zero-step",
        _space("units", min="16", max="128", step="0"),
        f"{PS}[2].feasibleSpace.step: parameter 'units': must be > 0, got 0",
    ),
    (
        "negative-step",
        _space("units", min="16", max="128", step="-16"),
        f"{PS}[2].feasibleSpace.step: parameter 'units': must be > 0, got -16",
    ),
    (
        "step-leaves-max-unreachable",
        _space("units", min="16", max="128", step="48"),
        f"{PS}[2].feasibleSpace.step: parameter 'units': max - min (112) is not a multiple of "
        "step 48, so max would never be sampled",
    ),
    (
        "log-from-zero",
        _space("learning_rate", min="0", max="0.01", distribution="logUniform"),
        f"{PS}[0].feasibleSpace.min: parameter 'learning_rate': a logUniform range needs "
        "min > 0, got 0",
    ),
    (
        "unknown-distribution",
        _space("dropout", min="0", max="0.4", distribution="gaussian"),
        f"{PS}[3].feasibleSpace.distribution: parameter 'dropout': must be one of uniform, "
        "logUniform, normal, logNormal, got 'gaussian'",
    ),
    (
        "unknown-parameter-type",
        lambda b: param(b, "dropout").update(parameterType="float"),
        f"{PS}[3].parameterType: parameter 'dropout': must be one of double, int, discrete, "
        "categorical, got 'float'",
    ),
    (
        "reference-to-no-search-parameter",
        _trial_parameter(0, reference="lr"),
        f"{TT}.trialParameters[0].reference: 'lr' names no search parameter in "
        "spec.parameters (known: ['learning_rate', 'num_layers', 'units', 'dropout', "
        "'batch_size'])",
    ),
    (
        "placeholder-naming-no-trial-parameter",
        _command(lambda cmd: [*cmd, "--momentum=${trialParameters.momentum}"]),
        f"{POD}.containers[0].command[15]: ${{trialParameters.momentum}} names no "
        "spec.trialTemplate.trialParameters entry (known: ['batchSize', 'dropout', "
        "'learningRate', 'numLayers', 'units'])",
    ),
    (
        "unreferenced-search-parameter",
        _add_unreferenced_parameter,
        f"{PS}[5]: search parameter 'momentum' is referenced by no "
        "spec.trialTemplate.trialParameters[].reference, so the trial would never see its value",
    ),
    (
        "trial-parameter-unused-in-command",
        _command(lambda cmd: [a for a in cmd if not a.startswith("--dropout=")]),
        f"{TT}.trialParameters[3].name: 'dropout' is not used in the trial container's "
        "command/args as ${trialParameters.dropout}",
    ),
    (
        "placeholder-outside-argv",
        _env_placeholder,
        f"{POD}.containers[0].env[0].value: trial parameters are substituted only in the "
        "trial container's command/args",
    ),
    (
        "trial-parameter-without-description",
        _drop_description,
        f"{TT}.trialParameters[1].description: required: say what 'numLayers' controls",
    ),
    (
        "name-not-dns",
        _set("metadata.name", "Fraud_MLP"),
        "metadata.name: 'Fraud_MLP' is not a valid Katib Experiment name",
    ),
    (
        "name-too-long",
        _set("metadata.name", "f" * 41),
        "at most 40 characters (it has 41)",
    ),
    (
        "objective-metric-missing",
        _del("spec.objective.objectiveMetricName"),
        "spec.objective.objectiveMetricName: required field is missing",
    ),
    (
        "objective-repeated-in-additional",
        _set("spec.objective.additionalMetricNames", ["val_roc_auc", "val_loss"]),
        "spec.objective.additionalMetricNames: must not repeat the objective metric 'val_roc_auc'",
    ),
    (
        "strategy-for-unknown-metric",
        _set("spec.objective.metricStrategies", [{"name": "auc", "value": "max"}]),
        "spec.objective.metricStrategies[0].name: 'auc' is neither the objective nor an "
        "additional metric",
    ),
    ("trial-template-missing", _del(f"{TT}"), f"{TT}: required field is missing"),
    (
        "primary-container-mismatch",
        _set(f"{TT}.primaryContainerName", "main"),
        f"{TT}.primaryContainerName: 'main' names no container of the trial Job "
        "(containers: ['training'])",
    ),
    (
        "file-collector",
        _set("spec.metricsCollectorSpec.collector.kind", "File"),
        "spec.metricsCollectorSpec.collector.kind: 'File' is not supported: kaizen reads "
        "metrics from the trial's stdout (supported: StdOut)",
    ),
    (
        "filter-with-one-group",
        _set(
            "spec.metricsCollectorSpec.source",
            {"filter": {"metricsFormat": [r"(\w+)=\S+"]}},
        ),
        "spec.metricsCollectorSpec.source.filter.metricsFormat[0]: '(\\\\w+)=\\\\S+' needs two "
        "groups (metric name, then value)",
    ),
    (
        "typo-in-spec",
        lambda b: b["spec"].update(maxTrialCounts=3),
        "spec.maxTrialCounts: unknown field (not in Katib v1beta1 ExperimentSpec); did "
        "you mean 'maxTrialCount'?",
    ),
    (
        "typo-in-container",
        lambda b: container(b).update(comand=["python"]),
        f"{POD}.containers[0].comand: unknown field (not in core/v1 Container); did you mean "
        "'command'?",
    ),
    (
        "typo-in-job-spec",
        _set(f"{TT}.trialSpec.spec.backofLimit", 0),
        f"{TT}.trialSpec.spec.backofLimit: unknown field (not in a batch/v1 JobSpec); did you "
        "mean 'backoffLimit'?",
    ),
    (
        "non-root-not-a-bool",
        lambda b: container(b)["securityContext"].update(runAsNonRoot="yes"),
        f"{POD}.containers[0].securityContext.runAsNonRoot: Input should be a valid boolean, "
        "got 'yes' (str)",
    ),
    (
        "not-a-job",
        _set(f"{TT}.trialSpec.kind", "TFJob"),
        f"{TT}.trialSpec: must be a batch/v1 Job (kaizen runs the Job's container locally), "
        "got apiVersion 'batch/v1', kind 'TFJob'",
    ),
    (
        "restart-always",
        _set(f"{TT}.trialSpec.spec.template.spec.restartPolicy", "Always"),
        f"{POD}.restartPolicy: a Job's pods need Never or OnFailure, got 'Always'",
    ),
    (
        "job-with-name",
        _set(f"{TT}.trialSpec.metadata", {"name": "fixed"}),
        f"{TT}.trialSpec.metadata: name and namespace must be omitted",
    ),
    (
        "no-command",
        lambda b: container(b).pop("command"),
        f"{POD}.containers[0].command: required: the local executor runs command + args",
    ),
    (
        "reference-used-twice",
        _trial_parameter(1, reference="learning_rate"),
        f"{TT}.trialParameters[1].reference: 'learning_rate' is referenced twice",
    ),
    (
        "trial-metadata-in-command",
        _command(lambda cmd: [*cmd, "--run=${trialSpec.Name}"]),
        f"{POD}.containers[0].command[15]: '--run=${{trialSpec.Name}}': trial metadata "
        "substitution (${trialSpec.*}) cannot be run locally",
    ),
    (
        "config-map-template",
        _set(
            f"{TT}.configMap",
            {"configMapName": "t", "configMapNamespace": "kubeflow", "templatePath": "t.yaml"},
        ),
        f"{TT}.configMap: trial templates from a ConfigMap cannot be run locally",
    ),
    (
        "unknown-resume-policy",
        _set("spec.resumePolicy", "Always"),
        "spec.resumePolicy: 'Always' is not one of Never, LongRunning, FromVolume",
    ),
    (
        "wrong-api-version",
        _set("apiVersion", "kubeflow.org/v1alpha3"),
        "apiVersion: must be 'kubeflow.org/v1beta1', got 'kubeflow.org/v1alpha3'",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_each_bad_spec_is_refused_naming_file_and_field(
    body: dict[str, Any], mutate: Mutation, expected: str
) -> None:
    mutate(body)
    message = refusal(body)
    lines = message.splitlines()
    assert all(line.startswith(f"{SOURCE}: ") for line in lines), message
    assert any(expected in line for line in lines), message


def test_every_problem_is_reported_at_once(body: dict[str, Any]) -> None:
    body["spec"]["parallelTrialCount"] = 9
    param(body, "num_layers")["feasibleSpace"] = {"min": "3", "max": "1"}
    body["spec"]["algorithm"]["algorithmName"] = "annealing"
    with pytest.raises(ExperimentSpecError) as caught:
        validate_experiment(body, SOURCE)
    assert len(caught.value.problems) == 3
    assert caught.value.source == SOURCE


@pytest.mark.parametrize("goal", [5.0, -1, 0])
def test_a_goal_outside_zero_one_is_accepted(body: dict[str, Any], goal: float) -> None:
    body["spec"]["objective"]["goal"] = goal
    before = copy.deepcopy(body)
    assert validate_experiment(body, SOURCE) is body
    assert body == before


def test_katib_defaults_for_collector_and_distribution_are_accepted(body: dict[str, Any]) -> None:
    del body["spec"]["metricsCollectorSpec"]
    del body["spec"]["earlyStopping"]
    validate_experiment(body, SOURCE)
    assert metrics_formats(body) == [DEFAULT_METRICS_FORMAT]


def test_grid_search_needs_steps_and_enough_combinations(body: dict[str, Any]) -> None:
    body["spec"]["algorithm"] = {"algorithmName": "grid"}
    message = refusal(body)
    assert (
        f"{SOURCE}: spec.parameters[0].feasibleSpace.step: grid search needs a step for double "
        "parameter 'learning_rate'"
    ) in message
    param(body, "learning_rate")["feasibleSpace"] = {
        "min": "0.001",
        "max": "0.003",
        "step": "0.001",
    }
    param(body, "dropout")["feasibleSpace"] = {"min": "0.0", "max": "0.2", "step": "0.1"}
    body["spec"]["maxTrialCount"] = 3 * 3 * 8 * 3 * 3 + 1
    body["spec"]["parallelTrialCount"] = 1
    assert refusal(body) == (
        f"{SOURCE}: spec.maxTrialCount (649) exceeds the 648 grid combinations of spec.parameters"
    )
    body["spec"]["maxTrialCount"] = 648
    validate_experiment(body, SOURCE)
    assert search_parameters(body)[3].grid_values() == (0.0, 0.1, 0.2)


def test_cmaes_needs_two_continuous_parameters(body: dict[str, Any]) -> None:
    body["spec"]["algorithm"] = {"algorithmName": "cmaes"}
    validate_experiment(body, SOURCE)
    body["spec"]["parameters"] = [param(body, "batch_size"), param(body, "units")]
    body["spec"]["trialTemplate"]["trialParameters"] = [
        p
        for p in body["spec"]["trialTemplate"]["trialParameters"]
        if p["name"] in ("batchSize", "units")
    ]
    container(body)["command"] = [
        a for a in container(body)["command"] if "${" not in a or "batchSize" in a or "units" in a
    ]
    assert refusal(body) == (
        f"{SOURCE}: spec.parameters: cmaes needs at least two int or double parameters "
        "(Katib refuses fewer)"
    )


def test_search_parameters_raises_with_validation_messages(body: dict[str, Any]) -> None:
    param(body, "units")["feasibleSpace"] = {"min": "128", "max": "16"}
    param(body, "num_layers")["feasibleSpace"] = {"min": 1, "max": "3"}  # not validated first
    with pytest.raises(ExperimentSpecError) as caught:
        search_parameters(body)
    assert caught.value.problems == [
        "spec.parameters[1].feasibleSpace.min: parameter 'num_layers': must be a quoted string, "
        "got 1",
        "spec.parameters[2].feasibleSpace: parameter 'units': inverted range: min 128 > max 16",
    ]
    assert str(caught.value).startswith("fraud-mlp-tpe: spec.parameters[1]")


# ---------------------------------------------------------------- apply_overrides


def test_overrides_replace_name_image_data_and_keep_the_rest(loaded: dict[str, Any]) -> None:
    before = copy.deepcopy(loaded)
    result = apply_overrides(
        loaded,
        name_suffix="run7-r0",
        image="registry.local/kaizen@sha256:abc",
        train_data="/data/run7/train.parquet",
        validation_data="/data/run7/validation.parquet",
        features_file="/data/run7/features.json",
        namespace="team-a",
    )
    assert loaded == before  # the input is untouched
    assert result["metadata"]["name"] == "fraud-mlp-tpe-run7-r0"
    assert result["metadata"]["namespace"] == "team-a"
    trial = trial_container(result)
    assert trial["image"] == "registry.local/kaizen@sha256:abc"
    assert substitute_trial_parameters(result, ASSIGNMENTS)[-4:] == [
        "--train-data=/data/run7/train.parquet",
        "--validation-data=/data/run7/validation.parquet",
        "--features-file=/data/run7/features.json",
        "--output-dir=/tmp/model",
    ]
    # Nothing else moved: undo the overrides and the bodies are equal again.
    result["metadata"].update(name="fraud-mlp-tpe", namespace="kubeflow")
    container(result).update(image=container(loaded)["image"], command=container(loaded)["command"])
    assert result == loaded


def test_suffix_is_made_a_valid_name(loaded: dict[str, Any]) -> None:
    result = apply_overrides(loaded, name_suffix="Run_7 (nightly)")
    assert result["metadata"]["name"] == "fraud-mlp-tpe-run-7-nightly"
    with pytest.raises(ExperimentSpecError, match="name_suffix: '___' has no letters or digits"):
        apply_overrides(loaded, name_suffix="___")


def test_long_suffixes_fit_katib_name_limit_and_stay_distinct(loaded: dict[str, Any]) -> None:
    run_a = "3f2a1b4c-9d8e-4f00-a1b2-c3d4e5f6a7b8-r0"
    run_b = "3f2a1b4c-9d8e-4f00-a1b2-c3d4e5f6a7b8-r1"
    name_a = apply_overrides(loaded, name_suffix=run_a)["metadata"]["name"]
    name_b = apply_overrides(loaded, name_suffix=run_b)["metadata"]["name"]
    assert len(name_a) == len(name_b) == MAX_EXPERIMENT_NAME_LENGTH
    assert name_a.startswith("fraud-mlp-tpe-3f2a1b4c-")
    assert name_a != name_b
    assert apply_overrides(loaded, name_suffix=run_a)["metadata"]["name"] == name_a  # stable


def test_lowering_the_trial_budget_lowers_parallel_and_failed_to_fit(
    loaded: dict[str, Any],
) -> None:
    result = apply_overrides(loaded, max_trial_count=2)
    assert [
        result["spec"][k] for k in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
    ] == [2, 2, 2]
    result = apply_overrides(
        loaded, max_trial_count=20, parallel_trial_count=4, max_failed_trial_count=0
    )
    assert [
        result["spec"][k] for k in ("maxTrialCount", "parallelTrialCount", "maxFailedTrialCount")
    ] == [20, 4, 0]


def test_conflicting_budget_overrides_are_refused_after_revalidation(
    loaded: dict[str, Any],
) -> None:
    with pytest.raises(ExperimentSpecError) as caught:
        apply_overrides(loaded, max_trial_count=2, parallel_trial_count=3)
    assert str(caught.value) == (
        "fraud-mlp-tpe (with overrides): spec.parallelTrialCount (3) must not exceed "
        "spec.maxTrialCount (2)"
    )
    with pytest.raises(ExperimentSpecError, match=r"spec.maxTrialCount: must be at least 1, got 0"):
        apply_overrides(loaded, max_trial_count=0)


def test_bad_overrides_are_refused(loaded: dict[str, Any]) -> None:
    with pytest.raises(ExperimentSpecError) as caught:
        apply_overrides(loaded, image=" ", train_data="")
    assert caught.value.problems == ["image: must not be empty", "--train-data: must not be empty"]
    with pytest.raises(ExperimentSpecError, match=r"metadata.namespace: 'Team_A' is not a valid"):
        apply_overrides(loaded, namespace="Team_A")
    without_features = copy.deepcopy(loaded)
    container(without_features)["command"] = [
        a for a in container(without_features)["command"] if not a.startswith("--features-file")
    ]
    with pytest.raises(ExperimentSpecError) as caught:
        apply_overrides(without_features, features_file="/f.json")
    assert str(caught.value) == (
        "fraud-mlp-tpe (with overrides): --features-file: the trial command has no "
        "--features-file argument to replace"
    )


def test_overrides_refuse_an_invalid_input_body(body: dict[str, Any]) -> None:
    body["spec"]["parallelTrialCount"] = 9
    with pytest.raises(ExperimentSpecError, match=r"^fraud-mlp-tpe: spec.parallelTrialCount \(9\)"):
        apply_overrides(body, image="x")


# ------------------------------------------------------- trial container, substitution


def test_substitution_produces_the_exact_trial_argv(loaded: dict[str, Any]) -> None:
    argv = substitute_trial_parameters(loaded, {**ASSIGNMENTS, "learning_rate": 1e-05})
    assert argv == [
        "python",
        "-m",
        "kaizen.training.trial",
        "--learning-rate=1e-05",
        "--num-layers=2",
        "--units=64",
        "--dropout=0.1",
        "--batch-size=256",
        "--epochs=8",
        "--patience=3",
        "--seed=42",
        "--train-data=/mnt/data/train.parquet",
        "--validation-data=/mnt/data/validation.parquet",
        "--features-file=/mnt/data/features.json",
        "--output-dir=/tmp/model",
    ]


def test_substitution_covers_args_and_repeated_placeholders(body: dict[str, Any]) -> None:
    container(body)["args"] = ["--tag=u${trialParameters.units}-l${trialParameters.numLayers}"]
    validate_experiment(body, SOURCE)
    assert substitute_trial_parameters(body, ASSIGNMENTS)[-1] == "--tag=u64-l2"


def test_substitution_refuses_missing_and_unknown_assignments(loaded: dict[str, Any]) -> None:
    partial = {k: v for k, v in ASSIGNMENTS.items() if k != "units"}
    with pytest.raises(ExperimentSpecError) as caught:
        substitute_trial_parameters(loaded, {**partial, "momentum": 0.9})
    assert caught.value.problems == [
        "assignments: 'momentum' names no search parameter (known: ['batch_size', 'dropout', "
        "'learning_rate', 'num_layers', 'units'])",
        "assignments: no value for search parameter 'units'",
    ]


def test_trial_container_is_a_copy(loaded: dict[str, Any]) -> None:
    trial = trial_container(loaded)
    assert trial["name"] == "training"
    assert trial["image"] == "ghcr.io/kaizen-mlops/kaizen-component:0.1.0"
    assert trial["securityContext"]["runAsNonRoot"] is True
    trial["image"] = "changed"
    assert trial_container(loaded)["image"] == "ghcr.io/kaizen-mlops/kaizen-component:0.1.0"


def test_replace_flag_handles_both_flag_forms() -> None:
    argv = ["run", "--output-dir=/tmp/a", "--output-dir-extra=x", "--seed", "1"]
    assert replace_flag(argv, "--output-dir", "/w/t0") == [
        "run",
        "--output-dir=/w/t0",
        "--output-dir-extra=x",
        "--seed",
        "1",
    ]
    assert replace_flag(argv, "--seed", "7")[-2:] == ["--seed", "7"]
    with pytest.raises(ValueError, match="the trial command has no --epochs argument to replace"):
        replace_flag(argv, "--epochs", "3")
