#!/usr/bin/env bash
# Sets everything up and runs the main job: installs the Debian packages, builds, lists the
# devices and runs the array demo on each of them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build/bin/mltrain devices
build/bin/mltrain demo
