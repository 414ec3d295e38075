"""A compiled pipeline's run-time parameters, and values for them checked before a run starts.

A compiled KFP pipeline declares what a run may set in ``root.inputDefinitions.parameters``:
each parameter's name, its ``parameterType`` (``NUMBER_INTEGER``, ``NUMBER_DOUBLE``, ``STRING``,
``BOOLEAN``, ``LIST``, ``STRUCT``), whether it is optional, its default and, for a parameter
typed with ``typing.Literal``, the values it accepts. Kubeflow Pipelines checks a new run's
values against exactly these and refuses the run (400) on an unknown name, a missing required
value or a value of the wrong JSON kind (``validatePipelineJobInputs`` in KFP 2.17's API
server). :func:`resolve_arguments` makes the same checks here, before any request, reports
every problem at once with the valid names, and turns command-line strings into the JSON
values KFP expects (``epochs=20`` is sent as the number 20, not the string ``"20"``).

:func:`read_pipeline_parameters` reads them from a compiled YAML file,
:func:`parameters_from_yaml` from its bytes (an object in the store) and
:func:`pipeline_parameters` from a spec already loaded.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from kaizen.pipeline.store import load_pipeline_spec

#: The parameter types a run may set, and how a person reads each of them.
PARAMETER_TYPES: dict[str, str] = {
    "NUMBER_INTEGER": "an integer",
    "NUMBER_DOUBLE": "a number",
    "STRING": "a string",
    "BOOLEAN": "true or false",
    "LIST": "a JSON list",
    "STRUCT": "a JSON object",
}
_INTEGER = re.compile(r"^[+-]?\d+$")


class ParameterError(ValueError):
    """Values given for a pipeline's parameters do not fit its declared inputs.

    Attributes:
        problems: one sentence per problem (unknown name, wrong type, missing value).
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class PipelineParameter:
    """One input parameter of a compiled pipeline.

    Attributes:
        name: the parameter's name (``-p name=value``).
        parameter_type: KFP's type, one of :data:`PARAMETER_TYPES` (or a type a run cannot
            set, such as ``TASK_FINAL_STATUS``).
        description: the pipeline docstring's words for it ("" when none).
        optional: a run may leave it out.
        default: the compiled default (integers as ``int``), or ``None``.
        has_default: the spec carries a default (which may itself be ``None``-like, e.g. "").
        literals: the only values accepted, for a ``Literal``-typed parameter; else empty.
    """

    name: str
    parameter_type: str
    description: str = ""
    optional: bool = False
    default: Any = None
    has_default: bool = False
    literals: tuple[Any, ...] = ()

    @property
    def required(self) -> bool:
        """A run must give a value: it is neither optional nor defaulted."""
        return not self.optional and not self.has_default

    @property
    def expected(self) -> str:
        """What a value must be, in words: ``an integer (NUMBER_INTEGER)``."""
        words = PARAMETER_TYPES.get(self.parameter_type, "not settable by a run")
        return f"{words} ({self.parameter_type})"


def _default_of(parameter_type: str, value: Any) -> Any:
    # The compiler writes every number as a float (256.0); an integer reads better as one.
    if parameter_type == "NUMBER_INTEGER" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def pipeline_parameters(
    spec: Mapping[str, Any], *, source: str = "the pipeline spec"
) -> dict[str, PipelineParameter]:
    """The run-time parameters a compiled pipeline spec declares, by name, sorted by name.

    Args:
        spec: the pipeline spec document (the first YAML document of a compiled pipeline).
        source: where the spec came from, for error messages (a file name or a URI).

    Returns:
        Every parameter of ``root.inputDefinitions.parameters``; empty when it declares none.

    Raises:
        ParameterError: the section is malformed (naming ``source`` and the field).
    """
    root = spec.get("root")
    if not isinstance(root, Mapping):
        raise ParameterError([f"{source}: 'root' must be a mapping, got {type(root).__name__}"])
    inputs = root.get("inputDefinitions") or {}
    declared = (inputs.get("parameters") or {}) if isinstance(inputs, Mapping) else None
    if not isinstance(declared, Mapping):
        raise ParameterError(
            [f"{source}: root.inputDefinitions.parameters must be a mapping of name to spec"]
        )
    parameters: dict[str, PipelineParameter] = {}
    for name in sorted(declared):
        entry = declared[name]
        if not isinstance(entry, Mapping) or not isinstance(entry.get("parameterType"), str):
            raise ParameterError(
                [
                    f"{source}: root.inputDefinitions.parameters.{name} must have a "
                    f"parameterType (expected one of {', '.join(PARAMETER_TYPES)})"
                ]
            )
        parameter_type = entry["parameterType"]
        literals = entry.get("literals") or ()
        parameters[str(name)] = PipelineParameter(
            name=str(name),
            parameter_type=parameter_type,
            description=str(entry.get("description") or ""),
            optional=bool(entry.get("isOptional", False)),
            default=_default_of(parameter_type, entry.get("defaultValue")),
            has_default="defaultValue" in entry,
            literals=tuple(_default_of(parameter_type, value) for value in literals),
        )
    return parameters


def read_pipeline_parameters(yaml_path: str | os.PathLike[str]) -> dict[str, PipelineParameter]:
    """The run-time parameters declared by a compiled pipeline YAML (``kaizen compile``'s).

    Raises:
        PipelineSpecError: the file is missing, not YAML or not a compiled pipeline.
        ParameterError: its input definitions are malformed.
    """
    return pipeline_parameters(load_pipeline_spec(yaml_path), source=str(yaml_path))


def parameters_from_yaml(data: bytes, *, source: str) -> dict[str, PipelineParameter]:
    """The run-time parameters of a compiled pipeline given as YAML bytes (a stored object).

    Args:
        data: the compiled YAML (its first document is the pipeline spec).
        source: where it came from (a URI), for error messages.

    Raises:
        ParameterError: naming ``source``: not UTF-8 YAML, no ``root`` mapping, or malformed
            input definitions.
    """
    try:
        documents = [doc for doc in yaml.safe_load_all(data.decode("utf-8")) if doc is not None]
    except (UnicodeDecodeError, yaml.YAMLError) as error:
        raise ParameterError([f"{source} is not a YAML pipeline spec: {error}"]) from None
    if not documents or not isinstance(documents[0], Mapping):
        raise ParameterError([f"{source} is not a compiled KFP pipeline spec"])
    return pipeline_parameters(documents[0], source=source)


def parse_assignments(pairs: Sequence[str]) -> dict[str, str]:
    """``NAME=VALUE`` strings (``-p`` options) to a dict of name to the raw value string.

    Raises:
        ParameterError: a pair has no ``=`` or an empty name, or a name is given twice.
    """
    assignments: dict[str, str] = {}
    problems = []
    for pair in pairs:
        name, equals, value = pair.partition("=")
        name = name.strip()
        if not equals or not name:
            problems.append(f"expected NAME=VALUE, got {pair!r}")
        elif name in assignments:
            problems.append(f"parameter {name!r} is given twice")
        else:
            assignments[name] = value
    if problems:
        raise ParameterError(problems)
    return assignments


def _kind(value: Any) -> str:
    return "a boolean" if isinstance(value, bool) else f"a {type(value).__name__}"


def coerce_value(parameter: PipelineParameter, value: Any) -> Any:
    """``value`` as the JSON value KFP expects for ``parameter``.

    A string (from a command line) is parsed by the parameter's type: ``20`` for an integer,
    ``0.5`` for a number, ``true``/``false`` for a boolean, JSON for a list or an object; a
    string parameter takes it as it is. A value that is already a Python object (a library
    caller's) must be of the right kind.

    Raises:
        ParameterError: naming the parameter, the expected type and what was given.
    """
    kind = parameter.parameter_type
    problem = f"parameter {parameter.name!r} expects {parameter.expected}, got {value!r}"
    if kind not in PARAMETER_TYPES:
        raise ParameterError([f"parameter {parameter.name!r} cannot be set by a run ({kind})"])
    coerced: Any
    if kind == "STRING":
        if not isinstance(value, str):
            raise ParameterError([f"{problem} ({_kind(value)})"])
        coerced = value
    elif kind == "NUMBER_INTEGER":
        if isinstance(value, str) and _INTEGER.match(value.strip()):
            coerced = int(value.strip())
        elif isinstance(value, int) and not isinstance(value, bool):
            coerced = value
        elif isinstance(value, float) and value.is_integer():
            coerced = int(value)
        else:
            raise ParameterError([problem])
    elif kind == "NUMBER_DOUBLE":
        try:
            if isinstance(value, bool):
                raise ValueError(value)
            coerced = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ParameterError([problem]) from None
        if not math.isfinite(coerced):
            raise ParameterError([f"{problem} (JSON has no NaN or infinity)"])
    elif kind == "BOOLEAN":
        if isinstance(value, bool):
            coerced = value
        elif isinstance(value, str) and value.strip().lower() in ("true", "false"):
            coerced = value.strip().lower() == "true"
        else:
            raise ParameterError([problem])
    else:  # LIST, STRUCT
        wanted = list if kind == "LIST" else dict
        coerced = value
        if isinstance(value, str):
            try:
                coerced = json.loads(value)
            except ValueError as error:
                raise ParameterError([f"{problem} (not JSON: {error})"]) from None
        if not isinstance(coerced, wanted):
            raise ParameterError([problem])
    if parameter.literals and coerced not in parameter.literals:
        allowed = ", ".join(repr(literal) for literal in parameter.literals)
        raise ParameterError(
            [f"parameter {parameter.name!r} accepts only {allowed}; got {value!r}"]
        )
    return coerced


def resolve_arguments(
    parameters: Mapping[str, PipelineParameter],
    values: Mapping[str, Any],
    *,
    pipeline: str = "the pipeline",
) -> dict[str, Any]:
    """Check ``values`` against a pipeline's parameters and convert them to JSON values.

    Every problem is collected before raising, so one run of a command shows all of them.

    Args:
        parameters: the pipeline's parameters (:func:`read_pipeline_parameters`).
        values: name to value; strings are parsed by the parameter's type (see
            :func:`coerce_value`).
        pipeline: how to name the pipeline in messages (``'kaizen-training' version ...``).

    Returns:
        Name to JSON value, only for the names given: parameters left out keep the
        pipeline's defaults on the server.

    Raises:
        ParameterError: unknown names (with the valid names and the closest match), values
            of the wrong type (with the expected type), required parameters left out.
    """
    problems: list[str] = []
    resolved: dict[str, Any] = {}
    valid = sorted(parameters)
    for name, value in values.items():
        parameter = parameters.get(name)
        if parameter is None:
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listed = ", ".join(valid) if valid else "none: it takes no parameters"
            problems.append(f"{pipeline} has no parameter {name!r}{hint}; valid names: {listed}")
            continue
        try:
            resolved[name] = coerce_value(parameter, value)
        except ParameterError as error:
            problems.extend(error.problems)
    missing = [p.name for p in parameters.values() if p.required and p.name not in values]
    for name in missing:
        problems.append(
            f"parameter {name!r} of {pipeline} is required ({parameters[name].expected}); "
            f"give it with -p {name}=VALUE"
        )
    if problems:
        raise ParameterError(problems)
    return resolved
