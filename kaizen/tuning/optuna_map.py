"""Katib algorithms and search spaces, mapped onto Optuna.

Katib runs ``tpe``, ``multivariate-tpe``, ``cmaes``, ``random`` and ``grid`` on Optuna itself
(its ``optuna`` suggestion service) and ``sobol`` on goptuna; here they map to:

- ``random``: ``RandomSampler``. Settings: random_state.
- ``grid``: ``GridSampler`` over every parameter's values (a double needs a step; an int
  without one steps by 1, as in Katib). Settings: random_state.
- ``tpe``: ``TPESampler(multivariate=False, constant_liar=True)``. Settings:
  n_startup_trials, n_ei_candidates, random_state.
- ``multivariate-tpe``: ``TPESampler(multivariate=True, constant_liar=True)``. Settings: as tpe.
- ``cmaes``: ``CmaEsSampler`` (categorical parameters sampled at random beside it).
  Settings: random_state, sigma (-> sigma0), restart_strategy (``none`` only: Optuna >= 4.4
  no longer implements ipop/bipop restarts, so those are refused rather than ignored).
- ``sobol``: ``QMCSampler(qmc_type="sobol")``. Settings: random_state.

Any other algorithm (bayesianoptimization, hyperband, pbt, enas, darts) is refused, naming the
supported ones. ``constant_liar`` is what Katib's Optuna service sets for TPE: running trials
count as bad so that parallel suggestions spread out. Settings are checked as Katib's services
check them; unknown ones are refused. Without ``random_state`` every sampler is seeded with
:data:`DEFAULT_RANDOM_STATE`, so a run is reproducible with ``parallelTrialCount`` 1 (with
more, the order in which trials finish also steers the sampler).

Parameter types: ``double`` (min/max, optional step, distribution uniform or logUniform),
``int`` (min/max, optional step, uniform or logUniform), ``discrete`` (a list of numbers) and
``categorical`` (a list of strings). ``discrete`` and ``categorical`` are categorical
distributions over the list's strings, as in Katib's Optuna service. Values go to the trial
as strings: ints as ``str(int)``, doubles as Python's shortest round-trip repr, stepped
doubles rounded to the step's decimals (0.1 + 0.2 is passed as ``0.3``).
"""

from __future__ import annotations

import decimal
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

#: The Katib algorithm names this executor runs.
SUPPORTED_ALGORITHMS: tuple[str, ...] = (
    "random",
    "grid",
    "tpe",
    "multivariate-tpe",
    "cmaes",
    "sobol",
)

#: algorithmSettings accepted per algorithm (the ones Katib's suggestion services accept).
ALGORITHM_SETTINGS: dict[str, tuple[str, ...]] = {
    "random": ("random_state",),
    "grid": ("random_state",),
    "tpe": ("n_startup_trials", "n_ei_candidates", "random_state"),
    "multivariate-tpe": ("n_startup_trials", "n_ei_candidates", "random_state"),
    "cmaes": ("random_state", "sigma", "restart_strategy"),
    "sobol": ("random_state",),
}

#: Seed of every sampler when ``algorithmSettings`` has no ``random_state``.
DEFAULT_RANDOM_STATE = 42

_DISTRIBUTIONS = ("uniform", "logUniform")


class TuningConfigError(ValueError):
    """The experiment asks for something the local executor cannot run; the message says what."""


@dataclass(frozen=True)
class SearchParameter:
    """One ``spec.parameters[]`` entry as an Optuna distribution.

    Attributes:
        name: the parameter name.
        parameter_type: double, int, discrete or categorical.
        distribution: the Optuna distribution sampled from.
        decimals: for stepped doubles, the decimals values are rounded to; else None.
    """

    name: str
    parameter_type: str
    distribution: Any
    decimals: int | None = None

    def format(self, value: Any) -> str:
        """The value as the string passed to the trial (Katib passes every value as text)."""
        if self.parameter_type == "int":
            return str(int(value))
        if self.parameter_type == "double":
            number = float(value)
            if self.decimals is not None:
                number = round(number, self.decimals)
            return repr(number)
        return str(value)

    def to_internal(self, text: str) -> Any:
        """The Optuna parameter value for a string made by :meth:`format`.

        Raises:
            TuningConfigError: the value does not belong to this parameter's feasible space.
        """
        try:
            if self.parameter_type == "int":
                value: Any = int(text)
            elif self.parameter_type == "double":
                value = float(text)
                if self.decimals is not None:
                    value = round(value, self.decimals)
            else:
                value = text
        except ValueError as error:
            raise TuningConfigError(
                f"parameter {self.name!r}: recorded value {text!r} is not a "
                f"{self.parameter_type}: {error}"
            ) from None
        if not self.distribution._contains(self.distribution.to_internal_repr(value)):
            raise TuningConfigError(
                f"parameter {self.name!r}: recorded value {text!r} is outside its feasible "
                f"space {self.distribution}"
            )
        return value


def _decimals(number: float) -> int:
    exponent = decimal.Decimal(repr(number)).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def search_space(body: Mapping[str, Any], *, grid: bool = False) -> dict[str, SearchParameter]:
    """Map ``spec.parameters`` of a validated CR body to Optuna distributions.

    Ranges are read through :func:`kaizen.tuning.spec.search_parameters` (which validated
    them); ``discrete`` and ``categorical`` values keep the body's exact strings, as Katib
    passes them.

    Args:
        body: the Experiment CR body, validated by :func:`kaizen.tuning.spec.validate_experiment`.
        grid: build the discretized space grid search needs (a categorical distribution of
            every grid value per parameter).

    Returns:
        ``{parameter name: SearchParameter}`` in the order of ``spec.parameters``.

    Raises:
        TuningConfigError: a distribution Optuna cannot sample (normal, logNormal), or (for
            grid) a double without a step.
    """
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from kaizen.tuning.spec import search_parameters

    raw_parameters = body["spec"]["parameters"]
    space: dict[str, SearchParameter] = {}
    for index, parameter in enumerate(search_parameters(body)):
        name, kind = parameter.name, parameter.type
        where = f"spec.parameters[{index}] ({name})"
        if kind in ("discrete", "categorical"):
            choices = tuple(str(value) for value in raw_parameters[index]["feasibleSpace"]["list"])
            space[name] = SearchParameter(name, kind, CategoricalDistribution(choices))
            continue
        if parameter.distribution not in _DISTRIBUTIONS:
            raise TuningConfigError(
                f"{where}: feasibleSpace.distribution {parameter.distribution!r} is not "
                f"supported by the local executor (Optuna samples {', '.join(_DISTRIBUTIONS)})"
            )
        assert parameter.min is not None and parameter.max is not None  # a validated range
        if grid:
            if kind == "double" and parameter.step is None:
                raise TuningConfigError(
                    f"{where}: feasibleSpace.step is required for algorithm grid: every double "
                    "parameter must be discretized with a step"
                )
            values = parameter.grid_values()
            decimals = None if kind == "int" else _decimals(float(parameter.step or 1))
            space[name] = SearchParameter(name, kind, CategoricalDistribution(values), decimals)
        elif kind == "int":
            space[name] = SearchParameter(
                name,
                kind,
                IntDistribution(
                    int(parameter.min),
                    int(parameter.max),
                    log=parameter.log,
                    step=int(parameter.step or 1),
                ),
            )
        elif parameter.step is None:
            space[name] = SearchParameter(
                name, kind, FloatDistribution(parameter.min, parameter.max, log=parameter.log)
            )
        else:
            decimals = max(_decimals(parameter.step), _decimals(parameter.min))
            space[name] = SearchParameter(
                name,
                kind,
                FloatDistribution(parameter.min, parameter.max, step=parameter.step),
                decimals,
            )
    return space


def grid_size(space: Mapping[str, SearchParameter]) -> int:
    """The number of grid points of a space built with ``grid=True``."""
    return math.prod(len(parameter.distribution.choices) for parameter in space.values())


def _setting_values(body: Mapping[str, Any], algorithm: str) -> dict[str, str]:
    settings: dict[str, str] = {}
    allowed = ALGORITHM_SETTINGS[algorithm]
    for index, item in enumerate(body["spec"]["algorithm"].get("algorithmSettings") or []):
        name = str(item.get("name"))
        if name not in allowed:
            raise TuningConfigError(
                f"spec.algorithm.algorithmSettings[{index}]: unknown setting {name!r} for "
                f"algorithm {algorithm!r}; supported settings: {list(allowed)}"
            )
        settings[name] = str(item.get("value"))
    return settings


def _int_setting(settings: Mapping[str, str], name: str, minimum: int) -> int | None:
    if name not in settings:
        return None
    try:
        value = int(settings[name])
    except ValueError:
        raise TuningConfigError(
            f"spec.algorithm.algorithmSettings: {name} = {settings[name]!r} is not an integer"
        ) from None
    if value < minimum:
        raise TuningConfigError(
            f"spec.algorithm.algorithmSettings: {name} = {value} must be >= {minimum}"
        )
    return value


def _grid_sampler_class() -> type[optuna.samplers.GridSampler]:
    import optuna

    class ExecutorGridSampler(optuna.samplers.GridSampler):
        """GridSampler without its end-of-grid ``study.stop()``.

        ``Study.stop`` only works inside ``Study.optimize``; the executor asks and tells on
        its own, and its trial budget (never above the grid size) ends the search.
        """

        def after_trial(self, *args: Any, **kwargs: Any) -> None:
            return None

    return ExecutorGridSampler


def algorithm_name(body: Mapping[str, Any]) -> str:
    """The experiment's ``spec.algorithm.algorithmName``, checked against the supported ones.

    Raises:
        TuningConfigError: the algorithm is missing or not one the local executor runs.
    """
    name = (body.get("spec", {}).get("algorithm") or {}).get("algorithmName")
    if name not in SUPPORTED_ALGORITHMS:
        raise TuningConfigError(
            f"spec.algorithm.algorithmName {name!r} is not supported by the local executor; "
            f"supported algorithms: {', '.join(SUPPORTED_ALGORITHMS)}"
        )
    return str(name)


def random_state(body: Mapping[str, Any]) -> int:
    """The seed of the experiment: ``random_state`` from algorithmSettings, else the default."""
    settings = _setting_values(body, algorithm_name(body))
    seed = _int_setting(settings, "random_state", 0)
    return DEFAULT_RANDOM_STATE if seed is None else seed


def build_sampler(
    body: Mapping[str, Any], space: Mapping[str, SearchParameter], *, max_trial_count: int
) -> optuna.samplers.BaseSampler:
    """Build the Optuna sampler for ``spec.algorithm``.

    Args:
        body: the Experiment CR body.
        space: the search space from :func:`search_space` (built with ``grid=True`` for grid).
        max_trial_count: the trial budget; grid refuses a budget larger than its grid, as
            Katib's grid validation does.

    Returns:
        A seeded sampler.

    Raises:
        TuningConfigError: unsupported algorithm, unknown or invalid setting, grid budget
            larger than the grid, cmaes on fewer than two numeric parameters.
    """
    import optuna

    name = algorithm_name(body)
    settings = _setting_values(body, name)
    seed = random_state(body)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        points = grid_size(space)
        if max_trial_count > points:
            raise TuningConfigError(
                f"spec.maxTrialCount ({max_trial_count}) exceeds the {points} points of the "
                "grid; lower it or add values/steps to the search space"
            )
        grid = {key: list(parameter.distribution.choices) for key, parameter in space.items()}
        return _grid_sampler_class()(grid, seed=seed)
    if name in ("tpe", "multivariate-tpe"):
        options: dict[str, Any] = {"seed": seed, "constant_liar": True}
        for key in ("n_startup_trials", "n_ei_candidates"):
            value = _int_setting(settings, key, 1 if key == "n_ei_candidates" else 0)
            if value is not None:
                options[key] = value
        # Optuna 5 made multivariate TPE its single-objective default; Katib's "tpe" is the
        # independent one, so both are set explicitly.
        options["multivariate"] = name == "multivariate-tpe"
        return optuna.samplers.TPESampler(**options)
    if name == "cmaes":
        numeric = [p for p in space.values() if p.parameter_type in ("double", "int")]
        if len(numeric) < 2:
            raise TuningConfigError(
                "algorithm cmaes needs at least two double/int parameters in spec.parameters "
                f"(found {len(numeric)}), as in Katib"
            )
        cma_options: dict[str, Any] = {
            "seed": seed,
            "independent_sampler": optuna.samplers.RandomSampler(seed=seed),
            "warn_independent_sampling": False,
        }
        if "sigma" in settings:
            try:
                sigma = float(settings["sigma"])
            except ValueError:
                sigma = -1.0
            if not sigma > 0:
                raise TuningConfigError(
                    f"spec.algorithm.algorithmSettings: sigma = {settings['sigma']!r} must be "
                    "a number > 0"
                )
            cma_options["sigma0"] = sigma
        strategy = settings.get("restart_strategy")
        if strategy is not None and strategy not in ("none", "None"):
            # Optuna >= 4.4 ignores restart_strategy (it moved to OptunaHub); running
            # without the restarts the spec asks for would be a silent difference.
            raise TuningConfigError(
                f"spec.algorithm.algorithmSettings: restart_strategy {strategy!r} cannot run "
                "locally (Optuna's CmaEsSampler no longer restarts); remove it or set 'none'"
            )
        with warnings.catch_warnings():
            # sigma0 is deprecated for Optuna 6 but honoured by the pinned Optuna 5.
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.CmaEsSampler(**cma_options)
    # sobol: the only algorithm left after algorithm_name's check. QMCSampler is marked
    # experimental since Optuna 3.0; that warning says nothing a user can act on.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.QMCSampler(
            qmc_type="sobol",
            seed=seed,
            independent_sampler=optuna.samplers.RandomSampler(seed=seed),
            warn_asynchronous_seeding=False,
            warn_independent_sampling=False,
        )
