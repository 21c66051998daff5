#!/usr/bin/env bash
# Installs the Debian packages mltrain needs on a fresh machine (Debian 12).
# Usage: scripts/install-deps.sh [--with-python]   (root, or via sudo)
#   --with-python also installs NumPy / PyTorch / h5py from Debian for cross-checks and benchmarks,
#   and TensorBoard from PyPI (pip; the io tests read mltrain's event files with it).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive

pkgs=(
  build-essential cmake pkg-config ca-certificates
  libopenblas-dev liblapacke-dev
  openmpi-bin libopenmpi-dev
  libhdf5-openmpi-dev hdf5-tools
  pocl-opencl-icd ocl-icd-opencl-dev opencl-headers clinfo libclblast-dev
  libyaml-dev zlib1g-dev libpng-dev libcairo2-dev libdlpack-dev
  dataset-fashion-mnist
  slurm-wlm slurm-client munge
)
py_pkgs=(python3-numpy)
if [ "${1:-}" = "--with-python" ]; then
  py_pkgs+=(python3-torch python3-h5py python3-pip python3-scipy python3-networkx python3-tqdm)
fi

# TensorBoard is not packaged by Debian: pip, into the system Python the tests use.
install_tensorboard() {
  [ "${1:-}" = "--with-python" ] || return 0
  /usr/bin/python3 -c 'import tensorboard' 2>/dev/null && return 0
  echo "install-deps: installing tensorboard (pip)"
  $SUDO /usr/bin/python3 -m pip install -q --break-system-packages tensorboard
}
# hyperopt (bench/tpe_hyperopt.py compares mltrain's TPE with it): from PyPI without its
# dependencies, which come from Debian above (a pip NumPy would shadow Debian's and break h5py).
install_hyperopt() {
  [ "${1:-}" = "--with-python" ] || return 0
  /usr/bin/python3 -c 'import hyperopt' 2>/dev/null && return 0
  echo "install-deps: installing hyperopt (pip, --no-deps)"
  $SUDO /usr/bin/python3 -m pip install -q --break-system-packages --no-deps hyperopt cloudpickle
}

missing=()
for p in "${pkgs[@]}" "${py_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  install_tensorboard "${1:-}"
  install_hyperopt "${1:-}"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_tensorboard "${1:-}"
install_hyperopt "${1:-}"
