"""Component: store a model that passed the gate under a versioned key."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Input, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def publish_model(
    model: Input[Model],
    report: Input[HTML],
    decision: Input[Artifact],
    evaluation: Input[Artifact],
    feature_manifest: Input[Artifact],
    model_name: str,
    published: Output[Artifact],
) -> None:
    """Publish the model, its report and metadata to the object store.

    Safe to re-run: the version key comes from the model's sha256 and is written once.

    Args:
        model: the trained model folder.
        report: the HTML evaluation report.
        decision: the gate decision (must be a pass).
        evaluation: test metrics (JSON).
        feature_manifest: feature names, service and windows (JSON).
        model_name: name the model is published under.
        published: where everything was stored (JSON).
    """
    import json

    from kaizen.pipeline_steps import publish_step

    record = publish_step(
        model.path,
        report.path,
        decision.path,
        evaluation.path,
        feature_manifest.path,
        model_name=model_name,
    )
    with open(published.path, "w") as handle:
        json.dump(record, handle, indent=2)
    published.metadata.update({"version": record["version"], "model_uri": record["model_uri"]})
