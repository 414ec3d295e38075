"""Names every layer shares, in one place and cheap to import (no pydantic, no third party).

``Settings`` takes its defaults from here; the compiled pipeline, the registry, the server
and the CLI read the names from ``Settings`` where a user may change them, from here where
they are fixed at import time (a pipeline's name in its decorator).
"""

DEFAULT_MODEL_NAME = "fraud-detector"
DEFAULT_PIPELINE_NAME = "kaizen-training"
