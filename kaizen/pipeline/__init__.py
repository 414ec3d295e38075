"""Running the pipeline: compile it, store it, run the compiled YAML locally, summarize a run."""
