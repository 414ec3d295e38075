"""Component: register a model that passed the gate in the MLflow model registry."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_model(
    model: Input[Model],
    decision: Input[Artifact],
    run_id: str,
    round_index: int,
    registered: Output[Artifact],
) -> None:
    """Register the model as a new version with alias ``challenger``.

    The first version of the model also becomes ``champion``. Safe to re-run: the same model
    from the same pipeline run maps to the version registered before.

    Args:
        model: the trained model folder.
        decision: the gate decision (must be a pass).
        run_id: the pipeline run id (its MLflow parent run).
        round_index: the tuning round whose model passed.
        registered: the registered version, its aliases and tags (JSON).
    """
    import json

    from kaizen.platform.settings import load_settings
    from kaizen.steps.register_model import register_step

    record = register_step(
        model.path,
        decision.path,
        settings=load_settings(),
        run_id=run_id,
        round_index=round_index,
    )
    with open(registered.path, "w") as handle:
        json.dump(record, handle, indent=2)
    registered.metadata.update(
        {"version": record["version"], "aliases": ",".join(record["aliases"])}
    )
