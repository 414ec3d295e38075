"""A cheap trial program for executor tests: Katib metric lines in milliseconds, no TensorFlow.

Per epoch ``i`` (1..epochs) it prints, flushed::

    epoch=i loss=<1-v> val_roc_auc=<v> val_accuracy=<v/2 + 0.5>

with ``v = quality * (1 - 0.5 ** i)``, ``quality = 1 - 2.5 * (x - 0.3) ** 2 - 0.5 * (y - 0.7) ** 2
- 0.1 * [opt == "sgd"] - 0.01 * |units - 64| / 64`` (floored at 0.02), then a final line
``best_epoch=E epochs_run=E val_roc_auc=<last v> ...`` like the real trial program.

Files in ``--output-dir`` let tests see what the process really did: ``pid``, and
``events.jsonl`` (one JSON object per start, epoch and end, with ``time.time()``).

Behaviours: ``--sleep S`` per epoch; ``--fail`` exits 3 after the first epoch; ``--quiet``
prints no metrics and exits 0; ``--ignore-sigterm`` ignores SIGTERM (only SIGKILL stops it);
``--slow-first PATH``: the first trial to create PATH sleeps ``--slow-sleep`` per epoch instead
(so of two trials started together exactly one is slow, whatever the sampler chose);
``--x-by-order A,B,C --order-dir DIR``: the n-th trial to start (counted with files in DIR)
uses the n-th value instead of ``--x``, so a test can fix which trial is bad;
``--meet DIR --meet-count N``: after its start event the trial leaves a file in DIR and waits
(up to ``--meet-timeout`` seconds) until N trials have, then writes ``met`` (or ``alone`` when
the wait ran out), so trials that run at the same time provably meet whatever the machine's speed.

:func:`experiment_body` builds a Katib Experiment CR body whose trial runs this program.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROGRAM = Path(__file__).resolve()
DEFAULT_PARAMETERS: list[dict[str, Any]] = [
    {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "0.0", "max": "1.0"}},
    {"name": "opt", "parameterType": "categorical", "feasibleSpace": {"list": ["adam", "sgd"]}},
    {
        "name": "units",
        "parameterType": "int",
        "feasibleSpace": {"min": "16", "max": "128", "step": "16"},
    },
]


def experiment_body(
    name: str = "fake",
    *,
    algorithm: str = "random",
    settings: dict[str, str] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    trial_args: Sequence[str] = ("--epochs=3",),
    max_trials: int = 3,
    parallel: int = 1,
    max_failed: int | None = None,
    goal: float | None = None,
    early_stopping: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A valid Katib Experiment body (maximize val_roc_auc) whose trial is this program."""
    parameters = DEFAULT_PARAMETERS if parameters is None else parameters
    objective: dict[str, Any] = {
        "type": "maximize",
        "objectiveMetricName": "val_roc_auc",
        "additionalMetricNames": ["val_accuracy", "loss"],
    }
    if goal is not None:
        objective["goal"] = goal
    spec: dict[str, Any] = {
        "objective": objective,
        "algorithm": {
            "algorithmName": algorithm,
            "algorithmSettings": [
                {"name": key, "value": value} for key, value in (settings or {}).items()
            ],
        },
        "parallelTrialCount": parallel,
        "maxTrialCount": max_trials,
        "maxFailedTrialCount": max_trials if max_failed is None else max_failed,
        "parameters": parameters,
        "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
        "trialTemplate": {
            "primaryContainerName": "training",
            "trialParameters": [
                {
                    "name": p["name"],
                    "description": f"{p['name']} of the fake",
                    "reference": p["name"],
                }
                for p in parameters
            ],
            "trialSpec": {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "containers": [
                                {
                                    "name": "training",
                                    "image": "kaizen/fake:test",
                                    "command": [
                                        "python",
                                        str(PROGRAM),
                                        *(
                                            f"--{p['name']}=${{trialParameters.{p['name']}}}"
                                            for p in parameters
                                        ),
                                        *trial_args,
                                        "--output-dir=/tmp/replaced-by-the-executor",
                                    ],
                                }
                            ],
                        }
                    }
                },
            },
        },
    }
    if early_stopping is not None:
        spec["earlyStopping"] = {
            "algorithmName": "medianstop",
            "algorithmSettings": [
                {"name": key, "value": value} for key, value in early_stopping.items()
            ],
        }
    return {
        "apiVersion": "kubeflow.org/v1beta1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def read_events(output_dir: Path) -> list[dict[str, Any]]:
    """The events a fake trial wrote in its output folder."""
    path = output_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def quality(x: float, y: float, opt: str, units: int) -> float:
    value = 1 - 2.5 * (x - 0.3) ** 2 - 0.5 * (y - 0.7) ** 2
    value -= 0.1 if opt == "sgd" else 0.0
    value -= 0.01 * abs(units - 64) / 64
    return max(value, 0.02)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--x", type=float, required=True)
    parser.add_argument("--y", type=float, default=0.7)
    parser.add_argument("--opt", default="adam")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--x-by-order", default=None)
    parser.add_argument("--order-dir", default=None)
    parser.add_argument("--slow-first", default=None)
    parser.add_argument("--slow-sleep", type=float, default=10.0)
    parser.add_argument("--meet", default=None)
    parser.add_argument("--meet-count", type=int, default=2)
    parser.add_argument("--meet-timeout", type=float, default=60.0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--output-dir", required=True)
    args = parser.parse_args()

    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    (output / "pid").write_text(str(os.getpid()))
    events = open(output / "events.jsonl", "a", encoding="utf-8")  # noqa: SIM115

    def event(kind: str, **extra: object) -> None:
        events.write(json.dumps({"event": kind, "time": time.time(), **extra}) + "\n")
        events.flush()

    event("start", argv=sys.argv[1:])
    if args.meet is not None:
        meeting = Path(args.meet)
        meeting.mkdir(parents=True, exist_ok=True)
        (meeting / str(os.getpid())).write_text("")
        deadline = time.monotonic() + args.meet_timeout
        while len(list(meeting.iterdir())) < args.meet_count and time.monotonic() < deadline:
            time.sleep(0.02)
        present = len(list(meeting.iterdir()))
        event("met" if present >= args.meet_count else "alone", present=present)
    x = args.x
    if args.x_by_order is not None:
        values = [float(value) for value in args.x_by_order.split(",")]
        for position in range(len(values)):
            try:
                os.close(os.open(Path(args.order_dir, str(position)), os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                continue
            x = values[position]
            event("order", position=position, x=x)
            break
    q = quality(x, args.y, args.opt, args.units)
    sleep = args.sleep
    if args.slow_first is not None:
        try:
            os.close(os.open(args.slow_first, os.O_CREAT | os.O_EXCL))
            sleep = args.slow_sleep
            event("slow")
        except FileExistsError:
            pass
    if args.quiet:
        print("training without metrics", flush=True)
        event("end")
        return 0
    value = 0.0
    for epoch in range(1, args.epochs + 1):
        time.sleep(sleep)
        value = q * (1 - 0.5**epoch)
        print(
            f"epoch={epoch} loss={1 - value:.6g} val_roc_auc={value:.6g} "
            f"val_accuracy={value / 2 + 0.5:.6g}",
            flush=True,
        )
        event("epoch", epoch=epoch)
        if args.fail:
            print("error: simulated failure", file=sys.stderr, flush=True)
            return 3
    print(
        f"best_epoch={args.epochs} epochs_run={args.epochs} val_roc_auc={value:.6g} "
        f"val_accuracy={value / 2 + 0.5:.6g}",
        flush=True,
    )
    event("end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
