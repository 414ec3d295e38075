"""``python -m kaizen.rehearsal`` (``make rehearsal``): the cluster rehearsal on this machine.

See docs/rehearsal.md. Exit status 0 when every step succeeded, 1 otherwise (the failing
step's error and log tail are printed), 2 for a bad option.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kaizen.rehearsal.run import COMPONENT_IMAGE, DEFAULT_WORKDIR, SERVING_IMAGE, Options, rehearse


def _parameter(text: str) -> tuple[str, Any]:
    name, separator, raw = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(raw)
    except ValueError:
        return name.strip(), raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kaizen.rehearsal",
        description="Start a cluster's services on 127.0.0.1, run the compiled pipeline with "
        "every task in a container of the component image, serve the model from the serving "
        "image, and print a summary.",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="Logs, server state and the run's outputs; emptied first, kept after "
        "(default: %(default)s).",
    )
    parser.add_argument("--component-image", default=COMPONENT_IMAGE, help="%(default)s")
    parser.add_argument("--serving-image", default=SERVING_IMAGE, help="%(default)s")
    parser.add_argument(
        "-p",
        "--param",
        action="append",
        type=_parameter,
        default=[],
        metavar="NAME=VALUE",
        help="A pipeline parameter (JSON value or string), e.g. -p rows=5000.",
    )
    options = parser.parse_args(argv)
    return rehearse(
        Options(
            workdir=options.workdir,
            component_image=options.component_image,
            serving_image=options.serving_image,
            arguments=dict(options.param),
        )
    )


if __name__ == "__main__":
    sys.exit(main())
