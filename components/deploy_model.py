"""Component: serve the version the register step added (local server or KServe)."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def deploy_model(
    registered: Input[Artifact],
    timeout_seconds: int,
    deployment: Output[Artifact],
) -> None:
    """Serve the registered version: as champion on the first deploy, else as challenger.

    With ``KAIZEN_DEPLOY_TARGET=local`` (the default) a running ``kaizen serve`` picks the
    version up by hot reload; the step records it, and waits for the server at
    ``KAIZEN_DEPLOY_SERVER_URL`` when one is set and answers. With ``kserve`` it rolls the
    InferenceService's predictor pods to the version and waits until they serve it. Safe to
    re-run: the same version changes nothing.

    Args:
        registered: the register step's record of the version (JSON).
        timeout_seconds: how long to wait for the server or the InferenceService.
        deployment: where the version went, its alias and the target's state (JSON).
    """
    import json

    from kaizen.platform.settings import load_settings
    from kaizen.steps.deploy_model import deploy_step

    record = deploy_step(
        registered.path, settings=load_settings(), timeout_s=float(timeout_seconds)
    )
    with open(deployment.path, "w") as handle:
        json.dump(record, handle, indent=2)
    deployment.metadata.update(
        {
            "target": record["target"],
            "version": record["version"],
            "alias": record["alias"] or "",
            "status": record["status"],
        }
    )
