#!/usr/bin/env bash
# The main job: install the tools, build the wasm package into pkg/, and serve the page
# (with its bundled model and sample images) on http://127.0.0.1:8080/.
#   scripts/serve.sh [--port N]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build-web.sh
exec node scripts/serve.mjs "$@"
