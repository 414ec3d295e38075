#!/usr/bin/env bash
# Build both Kaizen images with what `make images` runs (size budgets checked), push them to
# REGISTRY tagged TAG, and write their digests to $GITHUB_OUTPUT (docs/ci.md):
#   component=REGISTRY/kaizen-component@sha256:...   component_repository=...   component_digest=sha256:...
#   serving=...                                      serving_repository=...     serving_digest=...
# Usage: push-images.sh REGISTRY TAG BASE_IMAGE
set -euo pipefail

if [ "$#" -ne 3 ]; then
  echo "usage: $0 REGISTRY TAG BASE_IMAGE" >&2
  exit 2
fi
registry="$1" tag="$2" base_image="$3"
output="${GITHUB_OUTPUT:-/dev/stdout}"
summary="${GITHUB_STEP_SUMMARY:-/dev/stderr}"

python3 docker/build_images.py --engine docker --base-image "$base_image" \
  --component-image "$registry/kaizen-component:$tag" \
  --serving-image "$registry/kaizen-serving:$tag"
for image in component serving; do
  repository="$registry/kaizen-$image"
  docker push "$repository:$tag"
  pinned="$(docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' \
    "$repository:$tag" | grep -m1 "^$repository@sha256:")"
  {
    echo "$image=$pinned"
    echo "${image}_repository=$repository"
    echo "${image}_digest=${pinned##*@}"
  } >> "$output"
  echo "- $image: \`$pinned\`" >> "$summary"
done
