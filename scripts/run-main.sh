#!/usr/bin/env bash
# Sets everything up and runs the main job: installs the Debian packages, builds, lists the
# devices, then trains the README's main job (jobs/fashion_mnist_mlp.yaml: an MLP on Debian's
# Fashion-MNIST, one process, host CPU) and prints the test error at the best validation epoch.
# Extra arguments go to mltrain (e.g. --max-epochs 2, --resume=auto).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
build/bin/mltrain devices
build/bin/mltrain jobs/fashion_mnist_mlp.yaml "$@"
build/bin/mltrain print-monitor jobs/fashion_mnist_mlp_best.ckpt
