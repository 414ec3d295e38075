#!/usr/bin/env bash
# The base of both Kaizen images, pinned by digest (docs/ci.md, "Base image"), written to
# $GITHUB_OUTPUT as image=...: KAIZEN_BASE_IMAGE when set (the repository variable), else the
# digest that docker.io/library/python:3.11-slim-bookworm has today, with a notice saying so.
set -euo pipefail

default_base=docker.io/library/python:3.11-slim-bookworm
if [ -n "${KAIZEN_BASE_IMAGE:-}" ]; then
  image="$KAIZEN_BASE_IMAGE"
else
  digest="$(docker buildx imagetools inspect "$default_base" --format '{{json .Manifest}}' | jq -r .digest)"
  image="$default_base@$digest"
  echo "::notice title=base image::KAIZEN_BASE_IMAGE is not set: built on $image; set the variable to that value to build on the same bytes every time"
fi
if ! [[ "$image" =~ ^[a-z0-9./:_-]+@sha256:[0-9a-f]{64}$ ]]; then
  echo "::error title=base image::KAIZEN_BASE_IMAGE must be name:tag@sha256:<64 hex digits>"
  exit 1
fi
echo "image=$image" >> "${GITHUB_OUTPUT:-/dev/stdout}"
echo "base image: \`$image\`" >> "${GITHUB_STEP_SUMMARY:-/dev/stderr}"
