"""Katib Experiment specs: load, validate, override, and the trial-parameter substitution.

The Experiment is one ``kubeflow.org/v1beta1`` Experiment YAML in ``katib/``. Every module
passes it around as the **CR body**: a plain dict in Kubernetes camelCase form, exactly as in
the YAML. This module is the one place that decides whether a body is runnable:

* :func:`load_experiment` reads a file, validates it, and checks ``metadata.name`` equals the
  file name.
* :func:`validate_experiment` checks a body built in code (or after overrides) in two passes:
  the **structure** against the ``kubeflow_katib_api`` models (unknown fields with a
  "did you mean", wrong types, a trial Job checked against the Kubernetes Pod models), then
  the **semantics** Katib's admission webhook and suggestion services check, plus what the
  local executor needs. All problems are reported at once, each as
  ``<file>: <field path>: <problem>``.
* :func:`apply_overrides` makes a per-run copy (name suffix, image, data paths, budget).
* :func:`substitute_trial_parameters` is THE ``${trialParameters.x}`` substitution both the
  local executor and (through Katib itself) the cluster use.
* :func:`search_parameters` is a typed view of ``spec.parameters`` for the executor.

Decisions (refused with a message unless said otherwise):

* Budgets: ``maxTrialCount``, ``parallelTrialCount`` and ``maxFailedTrialCount`` must all be
  set (Katib would default the last two; local and cluster must run the same budget).
* Ranges: ``int`` and ``double`` need ``min < max``. ``min == max`` is an *empty* range
  (one value is a fixed argument, not a search); ``min > max`` is *inverted*. A step must be
  positive, no larger than ``max - min``, and divide ``max - min`` exactly (otherwise ``max``
  is unreachable; the check is exact, on the decimal strings). Log distributions need
  ``min > 0`` and take no step (Optuna samples a log range continuously).
* A search parameter no trial parameter references is refused: its value would never reach
  the trial, so searching it only wastes trials.
* Every trial parameter needs a ``description`` (our style rule) and must appear in the
  trial container's ``command``/``args``; ``${trialParameters.x}`` anywhere else in the
  trial spec is refused, because the local executor substitutes only the argv.
* Trial references to trial metadata (``${trialSpec.Name}``) and ``configMap`` trial
  templates are refused: they cannot be run locally.
* Only ``batch/v1`` ``Job`` trial specs with an explicit ``command`` run, and only the
  ``StdOut`` metrics collector (:data:`SUPPORTED_COLLECTORS`; also Katib's default when
  ``metricsCollectorSpec`` is absent). Other collectors need Katib's sidecar.
* ``objective.goal`` may be any number (a loss goal is not a probability); not refused.
* ``metadata.name`` follows Katib's webhook: a DNS-1035 label of at most
  :data:`MAX_EXPERIMENT_NAME_LENGTH` (40) characters, because Katib names the suggestion
  Service ``<name>-<algorithm>``, which must fit in 63.
* Algorithms: any Katib algorithm name is accepted here except the NAS ones (``enas``,
  ``darts``); which of them the local executor runs is its business. Settings are checked
  as Katib's Optuna suggestion service checks them for ``tpe``, ``multivariate-tpe``,
  ``cmaes``, ``random`` and ``grid``.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import re
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypedDict, Union, Unpack, get_args, get_origin

import yaml

API_VERSION = "kubeflow.org/v1beta1"
KIND = "Experiment"

#: Every algorithm Katib knows (hyperparameter and NAS).
KATIB_ALGORITHMS: tuple[str, ...] = (
    "random",
    "grid",
    "tpe",
    "multivariate-tpe",
    "cmaes",
    "sobol",
    "bayesianoptimization",
    "hyperband",
    "enas",
    "darts",
    "pbt",
)
#: Algorithms that search architectures through ``spec.nasConfig``, not ``spec.parameters``.
NAS_ALGORITHMS: tuple[str, ...] = ("enas", "darts")

#: Early stopping algorithms Katib has, with the settings each accepts.
EARLY_STOPPING_SETTINGS: dict[str, tuple[str, ...]] = {
    "medianstop": ("min_trials_required", "start_step"),
}

PARAMETER_TYPES: tuple[str, ...] = ("double", "int", "discrete", "categorical")
DISTRIBUTIONS: tuple[str, ...] = ("uniform", "logUniform", "normal", "logNormal")
LOG_DISTRIBUTIONS: tuple[str, ...] = ("logUniform", "logNormal")
OBJECTIVE_TYPES: tuple[str, ...] = ("maximize", "minimize")
METRIC_STRATEGIES: tuple[str, ...] = ("min", "max", "latest")
RESUME_POLICIES: tuple[str, ...] = ("Never", "LongRunning", "FromVolume")

#: Metrics collectors a kaizen run can use (the local executor reads the trial's stdout).
SUPPORTED_COLLECTORS: tuple[str, ...] = ("StdOut",)

#: Katib's default StdOut filter: group 1 is the metric name, group 2 its value.
DEFAULT_METRICS_FORMAT = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"

#: Katib's webhook limit (``<name>-<algorithm>`` must fit a 63-character Service name).
MAX_EXPERIMENT_NAME_LENGTH = 40

#: ``${trialParameters.<name>}``, as Katib writes it in trial templates.
TRIAL_PARAMETER_PLACEHOLDER = re.compile(r"\$\{trialParameters\.([^}]*)\}")

_EXPERIMENT_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_METRIC_NAME = re.compile(r"[\w|-]+")
_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_TRIAL_SPEC_META = re.compile(r"\$\{trialSpec\.[^}]*\}")
# Job restart policies Kubernetes allows (a Job refuses Always).
_JOB_RESTART_POLICIES = ("Never", "OnFailure")
_CMAES_RESTART_STRATEGIES = ("ipop", "bipop", "None", "none")


class ExperimentSpecError(ValueError):
    """An Experiment spec is not runnable.

    Every line of the message is ``<source>: <field path>: <problem>``.

    Attributes:
        source: the file (or a label for a body built in code).
        problems: one ``<field path>: <problem>`` per problem found.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(f"{source}: {problem}" for problem in self.problems))


Number = int | float


@dataclass(frozen=True)
class ParameterSpace:
    """One ``spec.parameters[]`` entry, parsed (Katib keeps every value as a string).

    Field names mirror Katib's ``feasibleSpace`` so the two read alike.

    Attributes:
        name: the search parameter's name (what ``trialParameters[].reference`` names).
        type: ``double``, ``int``, ``discrete`` or ``categorical``.
        min: lower bound (int for ``int``, float for ``double``); None for lists.
        max: upper bound, inclusive; None for lists.
        step: spacing of the values, or None for a continuous/unit-step range.
        list: the values of a ``discrete`` (numbers: int when written as an integer, else
            float) or ``categorical`` (strings) parameter; empty for ranges.
        distribution: ``uniform`` (also when the YAML gives none), ``logUniform``,
            ``normal`` or ``logNormal``.
    """

    name: str
    type: str
    min: Number | None = None
    max: Number | None = None
    step: Number | None = None
    list: tuple[Number | str, ...] = ()
    distribution: str = "uniform"

    @property
    def log(self) -> bool:
        """Whether values are sampled on a log scale."""
        return self.distribution in LOG_DISTRIBUTIONS

    def grid_values(self) -> tuple[Number | str, ...]:
        """Every value a grid search visits, in order.

        Returns:
            The list for ``discrete``/``categorical``; ``min, min+step, ..., max`` for a
            range (step 1 for an ``int`` without one), computed in decimal so 0.1 steps
            land on 0.3, not 0.30000000000000004.

        Raises:
            ValueError: a ``double`` without a step (a continuous range has no grid).
        """
        if self.type in ("discrete", "categorical"):
            return self.list
        if self.min is None or self.max is None:
            raise ValueError(f"parameter {self.name!r} has no range")
        if self.step is None and self.type == "double":
            raise ValueError(
                f"parameter {self.name!r}: a double without feasibleSpace.step has no grid"
            )
        low, high = Decimal(str(self.min)), Decimal(str(self.max))
        step = Decimal(str(self.step if self.step is not None else 1))
        count = int((high - low) / step) + 1
        values = [low + step * index for index in range(count)]
        if self.type == "int":
            return tuple(int(value) for value in values)
        return tuple(float(value) for value in values)


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (the second would silently win)",
                key_node.start_mark,
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def load_experiment(path: str | Path) -> dict[str, Any]:
    """Read, validate and return the Experiment CR body in a YAML file.

    Args:
        path: the Experiment YAML (one document).

    Returns:
        The body, exactly as in the file (camelCase keys, feasible-space values as strings).

    Raises:
        ExperimentSpecError: the file cannot be read, is not one YAML mapping, fails
            validation, or its ``metadata.name`` is not its file name.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ExperimentSpecError(source, [f"cannot read the file: {error.strerror}"]) from None
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_UniqueKeyLoader) if doc is not None]
    except yaml.YAMLError as error:
        raise ExperimentSpecError(source, [f"not valid YAML: {error}"]) from None
    if len(documents) != 1:
        raise ExperimentSpecError(
            source, [f"expected one YAML document (one Experiment), found {len(documents)}"]
        )
    body = documents[0]
    if not isinstance(body, dict):
        raise ExperimentSpecError(
            source, [f"expected a mapping (an Experiment), got {_describe(body)}"]
        )
    validate_experiment(body, source)
    name = body["metadata"]["name"]
    stem = Path(path).stem
    if name != stem:
        raise ExperimentSpecError(
            source,
            [
                f"metadata.name: {name!r} must equal the file name {stem!r} "
                "(one Experiment per file, named after it)"
            ],
        )
    return body


def dump_experiment(body: Mapping[str, Any]) -> str:
    """Return the body as YAML that :func:`load_experiment` reads back to an equal body.

    Args:
        body: the Experiment CR body.

    Returns:
        YAML text, keys in the body's order (strings such as ``"0.01"`` stay quoted).
    """
    return yaml.safe_dump(dict(body), sort_keys=False, default_flow_style=False)


# ------------------------------------------------------------------------ validation


def validate_experiment(body: Mapping[str, Any], source: str = "<experiment>") -> dict[str, Any]:
    """Check that a CR body is a valid Katib Experiment that kaizen can run.

    Args:
        body: the Experiment CR body (camelCase, as in the YAML). Not modified.
        source: names the body in messages (the file, or a label for bodies built in code).

    Returns:
        The same body, for chaining.

    Raises:
        ExperimentSpecError: listing every problem found, each with its field path.
    """
    if not isinstance(body, Mapping):
        raise ExperimentSpecError(source, [f"expected a mapping, got {_describe(body)}"])
    problems = _structure_problems(body)
    if not problems:
        problems = _SemanticChecker(body).run()
    if not problems:
        problems = _model_problems(body)
    if problems:
        raise ExperimentSpecError(source, problems)
    return body if isinstance(body, dict) else dict(body)


def _model_problems(body: Mapping[str, Any]) -> list[str]:
    """Deserialize with the katib-api models' own ``from_dict`` (a last line of defence)."""
    from kubeflow_katib_api.models.v1beta1_experiment import V1beta1Experiment

    try:
        V1beta1Experiment.from_dict(dict(body))
    except Exception as error:  # pydantic and the oneOf wrappers raise different types
        return [f"<root>: does not deserialize into V1beta1Experiment: {error}"]
    return []


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


# Structure: walk the body along the pydantic models' fields.

_ADAPTERS: dict[Any, Any] = {}


def _scalar_problem(value: Any, annotation: Any) -> str | None:
    from pydantic import TypeAdapter, ValidationError

    adapter = _ADAPTERS.get(annotation)
    if adapter is None:
        adapter = _ADAPTERS[annotation] = TypeAdapter(annotation)
    try:
        adapter.validate_python(value)
    except ValidationError as error:
        message = str(error.errors()[0]["msg"])
        if "string" in message and isinstance(value, (int, float)) and not isinstance(value, bool):
            message += " (quote it in the YAML: Katib keeps these values as strings)"
        return f"{message}, got {_describe(value)}"
    return None


def _check_value(value: Any, annotation: Any, path: str, problems: list[str]) -> None:
    from pydantic import BaseModel

    if annotation is Any:
        return
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        options = [arg for arg in get_args(annotation) if arg is not type(None)]
        if value is None:
            return
        if len(options) == 1:
            _check_value(value, options[0], path, problems)
            return
    elif origin is list:
        if not isinstance(value, list):
            problems.append(f"{path}: expected a list, got {_describe(value)}")
            return
        (item,) = get_args(annotation)
        for index, element in enumerate(value):
            _check_value(element, item, f"{path}[{index}]", problems)
        return
    elif origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{path}: expected a mapping, got {_describe(value)}")
            return
        _, item = get_args(annotation)
        for key, element in value.items():
            if not isinstance(key, str):
                problems.append(f"{path}: key {_describe(key)} is not a string")
                continue
            _check_value(element, item, f"{path}.{key}", problems)
        return
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if "actual_instance" in annotation.model_fields:
            # A oneOf wrapper (Quantity, IntOrString): its from_dict tries each schema.
            try:
                annotation.from_dict(value)  # type: ignore[attr-defined]
            except Exception:
                schemas = sorted(getattr(annotation, "one_of_schemas", set()) or ())
                problems.append(
                    f"{path}: expected one of {', '.join(schemas)}, got {_describe(value)}"
                )
            return
        _check_model(value, annotation, path, problems)
        return
    problem = _scalar_problem(value, annotation)
    if problem:
        problems.append(f"{path}: {problem}")


def _check_model(value: Any, model: Any, path: str, problems: list[str]) -> None:
    if not isinstance(value, dict):
        problems.append(f"{path}: expected a mapping, got {_describe(value)}")
        return
    fields = {(info.alias or name): info for name, info in model.model_fields.items()}
    for key, element in value.items():
        where = f"{path}.{key}" if path else str(key)
        info = fields.get(key)
        if info is None:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{where}: unknown field (not in {_model_label(model)}){hint}")
            continue
        _check_value(element, info.rebuild_annotation(), where, problems)
    for key, info in fields.items():
        if info.is_required() and key not in value:
            where = f"{path}.{key}" if path else key
            problems.append(f"{where}: required field is missing")


def _model_label(model: Any) -> str:
    """``core/v1 Container`` for ``IoK8sApiCoreV1Container``, and so on."""
    name = str(model.__name__)
    for prefix, label in (
        ("IoK8sApiCoreV1", "core/v1 "),
        ("IoK8sApimachineryPkgApisMetaV1", "meta/v1 "),
        ("V1beta1", "Katib v1beta1 "),
    ):
        if name.startswith(prefix):
            return label + name.removeprefix(prefix)
    return name


def _structure_problems(body: Mapping[str, Any]) -> list[str]:
    from kubeflow_katib_api.models.v1beta1_experiment import V1beta1Experiment

    problems: list[str] = []
    _check_model(dict(body), V1beta1Experiment, "", problems)
    template = (body.get("spec") or {}).get("trialTemplate") if not problems else None
    if isinstance(template, dict) and isinstance(template.get("trialSpec"), dict):
        _check_job(template["trialSpec"], "spec.trialTemplate.trialSpec", problems)
    return problems


def _check_job(job: dict[str, Any], path: str, problems: list[str]) -> None:
    """Check a ``batch/v1`` Job trial spec against the Kubernetes models."""
    from kubeflow_katib_api.models.io_k8s_api_core_v1_pod_template_spec import (
        IoK8sApiCoreV1PodTemplateSpec,
    )
    from kubeflow_katib_api.models.io_k8s_apimachinery_pkg_apis_meta_v1_object_meta import (
        IoK8sApimachineryPkgApisMetaV1ObjectMeta,
    )
    from kubernetes.client.models.v1_job_spec import V1JobSpec

    if job.get("apiVersion") != "batch/v1" or job.get("kind") != "Job":
        problems.append(
            f"{path}: must be a batch/v1 Job (kaizen runs the Job's container locally), "
            f"got apiVersion {job.get('apiVersion')!r}, kind {job.get('kind')!r}"
        )
        return
    for key, value in job.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            _check_model(
                value, IoK8sApimachineryPkgApisMetaV1ObjectMeta, f"{path}.metadata", problems
            )
        elif key != "spec":
            problems.append(f"{path}.{key}: unknown field (not in a batch/v1 Job)")
    spec = job.get("spec")
    if not isinstance(spec, dict):
        problems.append(f"{path}.spec: required mapping is missing")
        return
    known = dict(V1JobSpec.attribute_map.items())
    types_by_key = {known[attr]: kind for attr, kind in V1JobSpec.openapi_types.items()}
    for key, value in spec.items():
        where = f"{path}.spec.{key}"
        kind = types_by_key.get(key)
        if kind is None:
            close = difflib.get_close_matches(key, list(types_by_key), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{where}: unknown field (not in a batch/v1 JobSpec){hint}")
        elif key == "template":
            _check_model(value, IoK8sApiCoreV1PodTemplateSpec, where, problems)
        elif kind in ("int", "bool", "str"):
            expected = {"int": int, "bool": bool, "str": str}[kind]
            if not isinstance(value, expected) or (kind == "int" and isinstance(value, bool)):
                problems.append(f"{where}: expected {kind}, got {_describe(value)}")
        elif not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping ({kind}), got {_describe(value)}")
    if "template" not in spec:
        problems.append(f"{path}.spec.template: required field is missing")


# Semantics: what Katib's webhook and suggestion services refuse, plus local needs.


class _SemanticChecker:
    """Collects every semantic problem of a structurally valid body."""

    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.spec: dict[str, Any] = body.get("spec") or {}
        self.problems: list[str] = []

    def add(self, path: str, problem: str) -> None:
        self.problems.append(f"{path}: {problem}")

    def run(self) -> list[str]:
        self.check_header()
        if not self.body.get("spec"):
            self.add("spec", "required field is missing")
            return self.problems
        self.check_budget()
        self.check_objective()
        self.check_algorithm()
        self.check_early_stopping()
        if self.spec.get("resumePolicy") not in (None, *RESUME_POLICIES):
            self.add(
                "spec.resumePolicy",
                f"{self.spec['resumePolicy']!r} is not one of {', '.join(RESUME_POLICIES)}",
            )
        if self.spec.get("nasConfig") is not None:
            self.add("spec.nasConfig", "NAS experiments are not supported; use spec.parameters")
        spaces = self.check_parameters()
        self.check_grid(spaces)
        self.check_trial_template()
        self.check_metrics_collector()
        return self.problems

    def check_header(self) -> None:
        if self.body.get("apiVersion") != API_VERSION:
            self.add("apiVersion", f"must be {API_VERSION!r}, got {self.body.get('apiVersion')!r}")
        if self.body.get("kind") != KIND:
            self.add("kind", f"must be {KIND!r}, got {self.body.get('kind')!r}")
        metadata = self.body.get("metadata") or {}
        name = metadata.get("name")
        if not name:
            self.add("metadata.name", "required field is missing")
        elif not _EXPERIMENT_NAME.fullmatch(name) or len(name) > MAX_EXPERIMENT_NAME_LENGTH:
            self.add(
                "metadata.name",
                f"{name!r} is not a valid Katib Experiment name: lower-case letters, digits "
                "and '-', starting with a letter, ending with a letter or digit, at most "
                f"{MAX_EXPERIMENT_NAME_LENGTH} characters (it has {len(name)})",
            )
        namespace = metadata.get("namespace")
        if namespace is not None and not (_DNS_LABEL.fullmatch(namespace) and len(namespace) <= 63):
            self.add("metadata.namespace", f"{namespace!r} is not a valid namespace name")

    def check_budget(self) -> None:
        counts = {}
        for key, least in (
            ("maxTrialCount", 1),
            ("parallelTrialCount", 1),
            ("maxFailedTrialCount", 0),
        ):
            value = self.spec.get(key)
            if value is None:
                self.add(
                    f"spec.{key}",
                    "required: set it so the local executor and the cluster run the same budget",
                )
            elif value < least:
                self.add(f"spec.{key}", f"must be at least {least}, got {value}")
            else:
                counts[key] = value
        maximum = counts.get("maxTrialCount")
        if maximum is None:
            return
        parallel = counts.get("parallelTrialCount")
        if parallel is not None and parallel > maximum:
            self.problems.append(
                f"spec.parallelTrialCount ({parallel}) must not exceed "
                f"spec.maxTrialCount ({maximum})"
            )
        failed = counts.get("maxFailedTrialCount")
        if failed is not None and failed > maximum:
            self.problems.append(
                f"spec.maxFailedTrialCount ({failed}) must not exceed "
                f"spec.maxTrialCount ({maximum})"
            )

    def check_objective(self) -> None:
        objective = self.spec.get("objective")
        if not objective:
            self.add("spec.objective", "required field is missing")
            return
        if objective.get("type") not in OBJECTIVE_TYPES:
            self.add(
                "spec.objective.type",
                f"must be maximize or minimize, got {objective.get('type')!r}",
            )
        metric = objective.get("objectiveMetricName")
        if not metric:
            self.add("spec.objective.objectiveMetricName", "required field is missing")
        additional = list(objective.get("additionalMetricNames") or [])
        metrics = ([metric] if metric else []) + additional
        if metric and metric in additional:
            self.add(
                "spec.objective.additionalMetricNames",
                f"must not repeat the objective metric {metric!r}",
            )
        for index, name in enumerate(additional):
            if additional.index(name) != index:
                self.add(
                    f"spec.objective.additionalMetricNames[{index}]", f"duplicate metric {name!r}"
                )
        for name in metrics:
            if not _METRIC_NAME.fullmatch(name):
                self.add(
                    "spec.objective",
                    f"metric name {name!r} cannot be read from stdout: Katib's metric filter "
                    r"matches names of [\w|-] only",
                )
        seen: set[str] = set()
        strategies = objective.get("metricStrategies") or [] if metric else []
        for index, strategy in enumerate(strategies):
            path = f"spec.objective.metricStrategies[{index}]"
            name = strategy.get("name")
            if name not in metrics:
                self.add(
                    f"{path}.name", f"{name!r} is neither the objective nor an additional metric"
                )
            elif name in seen:
                self.add(f"{path}.name", f"duplicate strategy for {name!r}")
            seen.add(name)
            if strategy.get("value") not in METRIC_STRATEGIES:
                self.add(
                    f"{path}.value",
                    f"must be one of {', '.join(METRIC_STRATEGIES)}, got {strategy.get('value')!r}",
                )

    def check_algorithm(self) -> None:
        algorithm = self.spec.get("algorithm")
        if not algorithm:
            self.add("spec.algorithm", "required field is missing")
            return
        name = algorithm.get("algorithmName")
        if name not in KATIB_ALGORITHMS:
            self.add(
                "spec.algorithm.algorithmName",
                f"unknown algorithm {name!r}; Katib has {', '.join(KATIB_ALGORITHMS)}",
            )
            return
        if name in NAS_ALGORITHMS:
            self.add(
                "spec.algorithm.algorithmName",
                f"{name!r} is a neural architecture search algorithm (it needs spec.nasConfig); "
                "kaizen runs hyperparameter searches over spec.parameters",
            )
            return
        settings = self._settings(algorithm, "spec.algorithm.algorithmSettings")
        checks = _ALGORITHM_SETTING_CHECKS.get(name)
        if checks is None:
            return  # Katib's other suggestion services check their own settings.
        for index, (key, value) in settings.items():
            path = f"spec.algorithm.algorithmSettings[{index}]"
            check = checks.get(key)
            if check is None:
                self.add(
                    f"{path}.name",
                    f"unknown setting {key!r} for algorithm {name}; "
                    f"it accepts {', '.join(checks) or 'none'}",
                )
                continue
            problem = check(value)
            if problem:
                self.add(f"{path}.value", f"{key}: {problem}, got {value!r}")

    def _settings(self, spec: dict[str, Any], path: str) -> dict[int, tuple[str, str]]:
        settings: dict[int, tuple[str, str]] = {}
        seen: set[str] = set()
        for index, setting in enumerate(spec.get("algorithmSettings") or []):
            key, value = setting.get("name"), setting.get("value")
            if not key:
                self.add(f"{path}[{index}].name", "required field is missing")
                continue
            if key in seen:
                self.add(f"{path}[{index}].name", f"duplicate setting {key!r}")
                continue
            seen.add(key)
            settings[index] = (key, "" if value is None else value)
        return settings

    def check_early_stopping(self) -> None:
        early = self.spec.get("earlyStopping")
        if early is None:
            return
        name = early.get("algorithmName")
        allowed = EARLY_STOPPING_SETTINGS.get(name or "")
        if allowed is None:
            self.add(
                "spec.earlyStopping.algorithmName",
                f"unknown early stopping algorithm {name!r}; Katib has "
                f"{', '.join(EARLY_STOPPING_SETTINGS)}",
            )
            return
        path = "spec.earlyStopping.algorithmSettings"
        for index, (key, value) in self._settings(early, path).items():
            if key not in allowed:
                self.add(
                    f"{path}[{index}].name",
                    f"unknown setting {key!r} for {name}; it accepts {', '.join(allowed)}",
                )
            elif not _int_at_least(value, 1):
                # Katib's medianstop service: min_trials_required > 0, start_step >= 1.
                self.add(f"{path}[{index}].value", f"{key} must be an integer >= 1, got {value!r}")

    def check_parameters(self) -> list[ParameterSpace]:
        parameters = self.spec.get("parameters")
        if not parameters:
            self.add("spec.parameters", "required: at least one search parameter")
            return []
        spaces: list[ParameterSpace] = []
        names: set[str] = set()
        for index, parameter in enumerate(parameters):
            name = parameter.get("name")
            if name in names:
                self.add(f"spec.parameters[{index}].name", f"duplicate parameter {name!r}")
            names.add(name)
            space = _parse_parameter(parameter, index, self.problems)
            if space is not None:
                spaces.append(space)
        return spaces

    def check_grid(self, spaces: list[ParameterSpace]) -> None:
        algorithm = self.spec.get("algorithm") or {}
        name = algorithm.get("algorithmName")
        if name == "cmaes":
            continuous = [space for space in spaces if space.type in ("double", "int")]
            if len(continuous) < 2:
                self.add(
                    "spec.parameters",
                    "cmaes needs at least two int or double parameters (Katib refuses fewer)",
                )
        if name != "grid" or len(spaces) != len(self.spec.get("parameters") or []):
            return
        combinations = 1
        for index, space in enumerate(spaces):
            if space.type == "double" and space.step is None:
                self.add(
                    f"spec.parameters[{index}].feasibleSpace.step",
                    f"grid search needs a step for double parameter {space.name!r}",
                )
                return
            combinations *= len(space.grid_values())
        budget = self.spec.get("maxTrialCount")
        if isinstance(budget, int) and budget > combinations:
            self.problems.append(
                f"spec.maxTrialCount ({budget}) exceeds the {combinations} grid "
                "combinations of spec.parameters"
            )

    def check_trial_template(self) -> None:
        template = self.spec.get("trialTemplate")
        path = "spec.trialTemplate"
        if not template:
            self.add(path, "required field is missing")
            return
        if template.get("configMap") is not None:
            self.add(
                f"{path}.configMap",
                "trial templates from a ConfigMap cannot be run locally; inline trialSpec",
            )
        job = template.get("trialSpec")
        if not job:
            self.add(f"{path}.trialSpec", "required field is missing")
            return
        search_names = [p.get("name") for p in self.spec.get("parameters") or []]
        trial_names = self._check_trial_parameters(template, search_names)
        metadata = job.get("metadata") or {}
        if metadata.get("name") or metadata.get("namespace"):
            self.add(
                f"{path}.trialSpec.metadata",
                "name and namespace must be omitted (Katib names each trial's Job)",
            )
        pod = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        pod_path = f"{path}.trialSpec.spec.template.spec"
        restart = pod.get("restartPolicy")
        if restart not in _JOB_RESTART_POLICIES:
            self.add(
                f"{pod_path}.restartPolicy",
                f"a Job's pods need Never or OnFailure, got {restart!r}",
            )
        containers = pod.get("containers") or []
        primary = template.get("primaryContainerName")
        if not primary:
            self.add(f"{path}.primaryContainerName", "required field is missing")
            return
        names = [container.get("name") for container in containers]
        if primary not in names:
            self.add(
                f"{path}.primaryContainerName",
                f"{primary!r} names no container of the trial Job (containers: {names})",
            )
            return
        index = names.index(primary)
        container = containers[index]
        container_path = f"{pod_path}.containers[{index}]"
        if not container.get("image"):
            self.add(f"{container_path}.image", "required field is missing")
        if not container.get("command"):
            self.add(
                f"{container_path}.command",
                "required: the local executor runs command + args (it cannot see the "
                "image's entrypoint)",
            )
        argv = list(container.get("command") or []) + list(container.get("args") or [])
        used: set[str] = set()
        for position, argument in enumerate(argv):
            where = f"{container_path}.{_argv_field(container, position)}"
            for placeholder in TRIAL_PARAMETER_PLACEHOLDER.findall(argument):
                used.add(placeholder)
                if placeholder not in trial_names:
                    self.add(
                        where,
                        f"${{trialParameters.{placeholder}}} names no "
                        f"spec.trialTemplate.trialParameters entry (known: {sorted(trial_names)})",
                    )
            if _TRIAL_SPEC_META.search(argument):
                self.add(
                    where,
                    f"{argument!r}: trial metadata substitution (${{trialSpec.*}}) cannot be "
                    "run locally",
                )
        for index, name in enumerate(trial_names):
            if argv and name not in used:
                self.add(
                    f"{path}.trialParameters[{index}].name",
                    f"{name!r} is not used in the trial container's command/args as "
                    f"${{trialParameters.{name}}}",
                )
        self._check_placeholders_outside_argv(job, container_path)

    def _check_trial_parameters(
        self, template: dict[str, Any], search_names: list[Any]
    ) -> list[str]:
        path = "spec.trialTemplate.trialParameters"
        trial_parameters = template.get("trialParameters")
        if not trial_parameters:
            self.add(path, "required: at least one trial parameter")
            return []
        names: list[str] = []
        references: set[str] = set()
        for index, parameter in enumerate(trial_parameters):
            where = f"{path}[{index}]"
            name, reference = parameter.get("name"), parameter.get("reference")
            if not name or "{" in name or "}" in name:
                self.add(f"{where}.name", f"required, without '{{' or '}}', got {name!r}")
            elif name in names:
                self.add(f"{where}.name", f"duplicate trial parameter {name!r}")
            else:
                names.append(name)
            if not (parameter.get("description") or "").strip():
                self.add(
                    f"{where}.description",
                    f"required: say what {name!r} controls (it is shown in Katib's UI)",
                )
            if not reference:
                self.add(f"{where}.reference", "required field is missing")
            elif reference.startswith("${trialSpec."):
                self.add(
                    f"{where}.reference",
                    f"{reference!r}: trial metadata references cannot be run locally",
                )
            elif reference not in search_names:
                self.add(
                    f"{where}.reference",
                    f"{reference!r} names no search parameter in spec.parameters "
                    f"(known: {[n for n in search_names if n]})",
                )
            elif reference in references:
                self.add(f"{where}.reference", f"{reference!r} is referenced twice")
            if reference:
                references.add(reference)
        for index, name in enumerate(search_names):
            if name and name not in references:
                self.add(
                    f"spec.parameters[{index}]",
                    f"search parameter {name!r} is referenced by no "
                    "spec.trialTemplate.trialParameters[].reference, so the trial would "
                    "never see its value",
                )
        return names

    def _check_placeholders_outside_argv(self, job: dict[str, Any], container_path: str) -> None:
        container_prefix = container_path.removeprefix("spec.trialTemplate.trialSpec")
        for where, text in _strings(job, ""):
            in_argv = where.startswith(f"{container_prefix}.command") or where.startswith(
                f"{container_prefix}.args"
            )
            if not in_argv and TRIAL_PARAMETER_PLACEHOLDER.search(text):
                self.add(
                    f"spec.trialTemplate.trialSpec{where}",
                    "trial parameters are substituted only in the trial container's "
                    "command/args (that is all the local executor runs)",
                )

    def check_metrics_collector(self) -> None:
        collector_spec = self.spec.get("metricsCollectorSpec")
        if collector_spec is None:
            return  # Katib defaults to StdOut.
        kind = (collector_spec.get("collector") or {}).get("kind")
        if kind not in SUPPORTED_COLLECTORS:
            self.add(
                "spec.metricsCollectorSpec.collector.kind",
                f"{kind!r} is not supported: kaizen reads metrics from the trial's stdout "
                f"(supported: {', '.join(SUPPORTED_COLLECTORS)})",
            )
        source = collector_spec.get("source") or {}
        formats = (source.get("filter") or {}).get("metricsFormat") or []
        for index, pattern in enumerate(formats):
            where = f"spec.metricsCollectorSpec.source.filter.metricsFormat[{index}]"
            try:
                groups = re.compile(pattern).groups
            except re.error as error:
                self.add(where, f"{pattern!r} is not a valid regular expression: {error}")
                continue
            if groups < 2:
                self.add(where, f"{pattern!r} needs two groups (metric name, then value)")


def _strings(value: Any, path: str) -> list[tuple[str, str]]:
    """Every string in a nested structure, with its field path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [item for key, child in value.items() for item in _strings(child, f"{path}.{key}")]
    if isinstance(value, list):
        return [
            item
            for index, child in enumerate(value)
            for item in _strings(child, f"{path}[{index}]")
        ]
    return []


def _argv_field(container: Mapping[str, Any], position: int) -> str:
    command = list(container.get("command") or [])
    if position < len(command):
        return f"command[{position}]"
    return f"args[{position - len(command)}]"


def _int_at_least(value: str, least: int) -> bool:
    return bool(_INTEGER.fullmatch(value.strip())) and int(value) >= least


def _non_negative_int(value: str) -> str | None:
    return None if _int_at_least(value, 0) else "must be an integer >= 0"


def _non_negative_number(value: str) -> str | None:
    if _DECIMAL.fullmatch(value.strip()) and Decimal(value) >= 0:
        return None
    return "must be a number >= 0"


def _restart_strategy(value: str) -> str | None:
    if value in _CMAES_RESTART_STRATEGIES:
        return None
    return f"must be one of {', '.join(_CMAES_RESTART_STRATEGIES)}"


# Katib's Optuna suggestion service validates exactly these settings.
_ALGORITHM_SETTING_CHECKS: dict[str, dict[str, Any]] = {
    "tpe": {
        "n_startup_trials": _non_negative_int,
        "n_ei_candidates": _non_negative_int,
        "random_state": _non_negative_int,
    },
    "multivariate-tpe": {
        "n_startup_trials": _non_negative_int,
        "n_ei_candidates": _non_negative_int,
        "random_state": _non_negative_int,
    },
    "cmaes": {
        "restart_strategy": _restart_strategy,
        "sigma": _non_negative_number,
        "random_state": _non_negative_int,
    },
    "random": {"random_state": _non_negative_int},
    "grid": {"random_state": _non_negative_int},
}


# --------------------------------------------------------------- parameter spaces


def _parse_parameter(
    parameter: Mapping[str, Any], index: int, problems: list[str]
) -> ParameterSpace | None:
    """Parse one ``spec.parameters[index]``; append problems and return None if invalid."""
    start = len(problems)
    name = parameter.get("name")
    path = f"spec.parameters[{index}]"
    label = f"parameter {name!r}"

    def add(field: str, problem: str) -> None:
        problems.append(f"{path}.{field}: {label}: {problem}")

    if not name:
        problems.append(f"{path}.name: required field is missing")
    kind = parameter.get("parameterType")
    if kind not in PARAMETER_TYPES:
        add("parameterType", f"must be one of {', '.join(PARAMETER_TYPES)}, got {kind!r}")
        return None
    space = parameter.get("feasibleSpace") or {}
    if not space:
        add("feasibleSpace", "required field is missing")
        return None
    distribution = space.get("distribution") or "uniform"
    if distribution not in DISTRIBUTIONS:
        add(
            "feasibleSpace.distribution",
            f"must be one of {', '.join(DISTRIBUTIONS)}, got {distribution!r}",
        )
    if kind in ("discrete", "categorical"):
        for key in ("min", "max", "step"):
            if space.get(key) is not None:
                add(f"feasibleSpace.{key}", f"a {kind} parameter takes a list, not {key}")
        values = space.get("list") or []
        if not values:
            add("feasibleSpace.list", f"a {kind} parameter needs a non-empty list")
            return None
        parsed: list[Number | str] = []
        for position, text in enumerate(values):
            if not isinstance(text, str):
                add(f"feasibleSpace.list[{position}]", f"must be a quoted string, got {text!r}")
            elif kind == "categorical":
                parsed.append(text)
            elif _INTEGER.fullmatch(text.strip()):
                parsed.append(int(text))
            elif _DECIMAL.fullmatch(text.strip()):
                parsed.append(float(text))
            else:
                add(
                    f"feasibleSpace.list[{position}]",
                    f"{text!r} is not a number (discrete lists hold numbers; use categorical "
                    "for strings)",
                )
        if len(problems) == start and len(set(parsed)) != len(parsed):
            duplicates = sorted({str(v) for v in parsed if parsed.count(v) > 1})
            add("feasibleSpace.list", f"duplicate values {duplicates}")
        if len(problems) > start:
            return None
        return ParameterSpace(
            name=str(name), type=kind, list=tuple(parsed), distribution=distribution
        )

    if space.get("list"):
        add("feasibleSpace.list", f"a {kind} range takes min/max, not a list")
    bounds: dict[str, Decimal] = {}
    for key in ("min", "max", "step"):
        text = space.get(key)
        if text is None:
            if key != "step":
                add(f"feasibleSpace.{key}", f"required for a {kind} parameter")
            continue
        pattern = _INTEGER if kind == "int" else _DECIMAL
        if not isinstance(text, str):
            add(f"feasibleSpace.{key}", f"must be a quoted string, got {text!r}")
            continue
        if not pattern.fullmatch(text.strip()):
            expected = "an integer" if kind == "int" else "a decimal number"
            add(f"feasibleSpace.{key}", f"must be {expected}, got {text!r}")
            continue
        bounds[key] = Decimal(text)
    low, high, step = bounds.get("min"), bounds.get("max"), bounds.get("step")
    if low is not None and high is not None:
        if low == high:
            add("feasibleSpace", f"empty range: min == max == {space['min']} (nothing to search)")
        elif low > high:
            add("feasibleSpace", f"inverted range: min {space['min']} > max {space['max']}")
        elif step is not None:
            if step <= 0:
                add("feasibleSpace.step", f"must be > 0, got {space['step']}")
            elif step > high - low:
                add(
                    "feasibleSpace.step",
                    f"{space['step']} is larger than the range {space['min']}..{space['max']}",
                )
            elif (high - low) % step != 0:
                add(
                    "feasibleSpace.step",
                    f"max - min ({high - low}) is not a multiple of step {space['step']}, so "
                    "max would never be sampled",
                )
        if distribution in LOG_DISTRIBUTIONS:
            if low <= 0:
                add(
                    "feasibleSpace.min", f"a {distribution} range needs min > 0, got {space['min']}"
                )
            if step is not None:
                add("feasibleSpace.step", f"a {distribution} range cannot have a step")
    elif step is not None and step <= 0:
        add("feasibleSpace.step", f"must be > 0, got {space['step']}")
    if len(problems) > start or low is None or high is None:
        return None
    convert = int if kind == "int" else float
    return ParameterSpace(
        name=str(name),
        type=kind,
        min=convert(low),
        max=convert(high),
        step=convert(step) if step is not None else None,
        distribution=distribution,
    )


def search_parameters(body: Mapping[str, Any]) -> list[ParameterSpace]:
    """Return ``spec.parameters`` parsed into typed :class:`ParameterSpace` values.

    Args:
        body: an Experiment CR body (validated or not; only ``spec.parameters`` is read).

    Returns:
        One :class:`ParameterSpace` per search parameter, in the body's order.

    Raises:
        ExperimentSpecError: a parameter does not parse (same messages as validation).
    """
    parameters = (body.get("spec") or {}).get("parameters") or []
    problems: list[str] = []
    spaces = [
        _parse_parameter(parameter, index, problems) for index, parameter in enumerate(parameters)
    ]
    if problems:
        raise ExperimentSpecError(_name_of(body), problems)
    return [space for space in spaces if space is not None]


def metrics_formats(body: Mapping[str, Any]) -> list[str]:
    """Return the regular expressions that read metrics from a trial's stdout.

    Args:
        body: an Experiment CR body.

    Returns:
        ``metricsCollectorSpec.source.filter.metricsFormat`` when given, else
        ``[DEFAULT_METRICS_FORMAT]`` (Katib's default). Group 1 is the name, group 2 the value.
    """
    collector = (body.get("spec") or {}).get("metricsCollectorSpec") or {}
    formats = ((collector.get("source") or {}).get("filter") or {}).get("metricsFormat")
    return list(formats) if formats else [DEFAULT_METRICS_FORMAT]


# ------------------------------------------------------------ trial and overrides


def _name_of(body: Mapping[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name") or "<experiment>")


def _primary_container(body: Mapping[str, Any]) -> dict[str, Any]:
    """The trial container itself (not a copy), or ExperimentSpecError."""
    template = (body.get("spec") or {}).get("trialTemplate") or {}
    primary = template.get("primaryContainerName")
    job = template.get("trialSpec") or {}
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
    for container in containers:
        if isinstance(container, dict) and container.get("name") == primary:
            return container
    raise ExperimentSpecError(
        _name_of(body),
        [
            f"spec.trialTemplate.primaryContainerName: {primary!r} names no container of "
            "spec.trialTemplate.trialSpec.spec.template.spec.containers"
        ],
    )


def trial_container(body: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of the trial container: the trial Job's ``primaryContainerName`` one.

    Args:
        body: a validated Experiment CR body.

    Returns:
        A deep copy of the container (``name``, ``image``, ``command``, ``args``, ...), so
        callers cannot change the body by accident.

    Raises:
        ExperimentSpecError: no container has the primary container's name.
    """
    return copy.deepcopy(_primary_container(body))


def substitute_trial_parameters(
    body: Mapping[str, Any], assignments: Mapping[str, object]
) -> list[str]:
    """Return the trial's argv with every ``${trialParameters.<name>}`` replaced.

    This is the substitution Katib applies to the trial template: each trial parameter
    takes the value of the search parameter its ``reference`` names, formatted with
    ``str(value)``. Both backends use it, so a trial runs the same command everywhere.

    Args:
        body: a validated Experiment CR body.
        assignments: search parameter name (``spec.parameters[].name``) to value, one per
            search parameter.

    Returns:
        The trial container's ``command`` followed by its ``args``, substituted.

    Raises:
        ExperimentSpecError: an assignment is missing, or names no search parameter, or a
            placeholder names no trial parameter.
    """
    source = _name_of(body)
    spec = body.get("spec") or {}
    template = spec.get("trialTemplate") or {}
    reference_of = {
        parameter.get("name"): parameter.get("reference")
        for parameter in template.get("trialParameters") or []
    }
    search_names = {parameter.get("name") for parameter in spec.get("parameters") or []}
    problems = [
        f"assignments: {name!r} names no search parameter (known: {sorted(search_names)})"
        for name in assignments
        if name not in search_names
    ]
    problems += [
        f"assignments: no value for search parameter {name!r}"
        for name in sorted(search_names - set(assignments))
    ]
    if problems:
        raise ExperimentSpecError(source, problems)

    def replace(match: re.Match[str]) -> str:
        trial_name = match.group(1)
        reference = reference_of.get(trial_name)
        if reference is None:
            raise ExperimentSpecError(
                source,
                [f"{match.group(0)} names no spec.trialTemplate.trialParameters entry"],
            )
        return str(assignments[reference])

    container = _primary_container(body)
    argv = list(container.get("command") or []) + list(container.get("args") or [])
    return [TRIAL_PARAMETER_PLACEHOLDER.sub(replace, argument) for argument in argv]


def replace_flag(argv: Sequence[str], flag: str, value: str) -> list[str]:
    """Return ``argv`` with the value of ``flag`` replaced (``--flag=v`` or ``--flag v``).

    Args:
        argv: a command line.
        flag: the flag, e.g. ``--output-dir``.
        value: its new value.

    Returns:
        A new list; every occurrence of the flag gets ``value``.

    Raises:
        ValueError: ``flag`` does not occur in ``argv``.
    """
    result = list(argv)
    found = False
    for index, argument in enumerate(result):
        if argument.startswith(f"{flag}="):
            result[index] = f"{flag}={value}"
            found = True
        elif argument == flag and index + 1 < len(result):
            result[index + 1] = value
            found = True
    if not found:
        raise ValueError(f"the trial command has no {flag} argument to replace")
    return result


def _suffixed_name(name: str, suffix: str) -> str:
    """``<name>-<suffix>``, made a valid Katib name of at most 40 characters, deterministically."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", suffix.lower()).strip("-")
    if not cleaned:
        raise ExperimentSpecError(
            name, [f"name_suffix: {suffix!r} has no letters or digits to put in a name"]
        )
    full = f"{name}-{cleaned}"
    if len(full) <= MAX_EXPERIMENT_NAME_LENGTH:
        return full
    # Too long for Katib: keep the readable start, and a digest of the whole name so two
    # runs whose names differ only in the cut-off part still get different Experiments.
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    head = full[: MAX_EXPERIMENT_NAME_LENGTH - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


class ExperimentOverrides(TypedDict, total=False):
    """Per-run changes to an Experiment; the one list of them (see :func:`apply_overrides`).

    The local executor's callers, the cluster launcher and the pipeline's tune step all pass
    these keywords through unchanged; a value of None leaves the Experiment's own.
    """

    name_suffix: str | None
    image: str | None
    train_data: str | None
    validation_data: str | None
    features_file: str | None
    max_trial_count: int | None
    parallel_trial_count: int | None
    max_failed_trial_count: int | None
    namespace: str | None


def apply_overrides(
    body: Mapping[str, Any], **overrides: Unpack[ExperimentOverrides]
) -> dict[str, Any]:
    """Return a validated copy of the Experiment with per-run overrides; ``body`` is untouched.

    Lowering ``max_trial_count`` alone also lowers ``parallelTrialCount`` and
    ``maxFailedTrialCount`` to it when they would exceed it (a budget of 2 trials cannot run
    3 at once); explicit conflicting overrides are refused instead.

    Args:
        body: a valid Experiment CR body.
        name_suffix: appended to ``metadata.name`` as ``<name>-<suffix>`` (lower-cased,
            other characters than ``[a-z0-9-]`` become ``-``). A result longer than Katib's
            40 characters keeps its start and ends in an 8-hex digest of the full name.
        image: the trial container's image.
        train_data: value of the trial's ``--train-data`` argument.
        validation_data: value of ``--validation-data``.
        features_file: value of ``--features-file``.
        max_trial_count: ``spec.maxTrialCount``.
        parallel_trial_count: ``spec.parallelTrialCount``.
        max_failed_trial_count: ``spec.maxFailedTrialCount``.
        namespace: ``metadata.namespace``.

    Returns:
        The new body, validated.

    Raises:
        TypeError: a keyword that is not one of :class:`ExperimentOverrides`.
        ExperimentSpecError: ``body`` is invalid, an override is empty, the trial command
            lacks an argument to override, or the result is invalid (source
            ``<name> (with overrides)``).
    """
    unknown = sorted(set(overrides) - set(ExperimentOverrides.__annotations__))
    if unknown:
        raise TypeError(
            f"unknown Experiment override(s) {unknown}; "
            f"expected some of {sorted(ExperimentOverrides.__annotations__)}"
        )
    name_suffix = overrides.get("name_suffix")
    image = overrides.get("image")
    train_data = overrides.get("train_data")
    validation_data = overrides.get("validation_data")
    features_file = overrides.get("features_file")
    max_trial_count = overrides.get("max_trial_count")
    parallel_trial_count = overrides.get("parallel_trial_count")
    max_failed_trial_count = overrides.get("max_failed_trial_count")
    namespace = overrides.get("namespace")
    validate_experiment(body, _name_of(body))
    result: dict[str, Any] = copy.deepcopy(dict(body))
    source = f"{_name_of(body)} (with overrides)"
    metadata = result["metadata"]
    spec = result["spec"]
    if name_suffix is not None:
        metadata["name"] = _suffixed_name(metadata["name"], name_suffix)
    if namespace is not None:
        metadata["namespace"] = namespace
    container = _primary_container(result)
    problems: list[str] = []
    if image is not None:
        if not image.strip():
            problems.append("image: must not be empty")
        container["image"] = image
    for flag, value in (
        ("--train-data", train_data),
        ("--validation-data", validation_data),
        ("--features-file", features_file),
    ):
        if value is None:
            continue
        if not value.strip():
            problems.append(f"{flag}: must not be empty")
            continue
        command = list(container.get("command") or [])
        args = list(container.get("args") or [])
        try:
            replaced = replace_flag(command + args, flag, value)
        except ValueError as error:
            problems.append(f"{flag}: {error}")
            continue
        container["command"] = replaced[: len(command)]
        if args:
            container["args"] = replaced[len(command) :]
    if problems:
        raise ExperimentSpecError(source, problems)
    if max_trial_count is not None:
        spec["maxTrialCount"] = max_trial_count
        for key, explicit in (
            ("parallelTrialCount", parallel_trial_count),
            ("maxFailedTrialCount", max_failed_trial_count),
        ):
            current = spec.get(key)
            if (
                explicit is None
                and isinstance(current, int)
                and isinstance(max_trial_count, int)
                and current > max_trial_count
            ):
                spec[key] = max_trial_count
    if parallel_trial_count is not None:
        spec["parallelTrialCount"] = parallel_trial_count
    if max_failed_trial_count is not None:
        spec["maxFailedTrialCount"] = max_failed_trial_count
    return validate_experiment(result, source)
