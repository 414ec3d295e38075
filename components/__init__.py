"""KFP components: one per file, each a thin wrapper over one step in ``kaizen.pipeline_steps``.

Every component runs on the project image and installs nothing at run time
(``install_kfp_package=False``). ``kaizen compile --image-digest`` pins the image by digest in
the compiled YAML.
"""

COMPONENT_IMAGE = "ghcr.io/kaizen-mlops/kaizen-component:0.1.0"
