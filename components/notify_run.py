"""Component: the exit handler; always runs and records how the pipeline ended."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def notify_run(
    status: dsl.PipelineTaskFinalStatus,
    webhook_url: str,
    run_id: str,
    notification: Output[Artifact],
) -> None:
    """Log the run's final state and POST it as JSON to the webhook when one is set.

    Args:
        status: final status of the pipeline's tasks, filled in by the backend.
        webhook_url: http(s) URL to POST the notification to; empty for log only.
        run_id: the pipeline run id, under which the gate rounds recorded their outcome.
        notification: the notification and its delivery record (JSON).
    """
    import json

    from kaizen.platform.settings import load_settings
    from kaizen.steps.notify_run import notify_step

    record = notify_step(
        pipeline=status.pipeline_job_resource_name,
        run=status.pipeline_task_name,
        state=status.state,
        settings=load_settings(),
        error_message=status.error_message or "",
        webhook_url=webhook_url,
        run_id=run_id,
    )
    with open(notification.path, "w") as handle:
        json.dump(record, handle, indent=2)
    notification.metadata["state"] = status.state
