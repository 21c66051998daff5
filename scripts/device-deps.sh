#!/usr/bin/env bash
# Downloads (without installing) the Debian packages that a minimal mltrain build needs and that
# a bare CUDA machine lacks, into .devdeps/ (ignored by git). scripts/device-check.sh unpacks them
# into a private prefix on a machine with an NVIDIA GPU, no package manager and no network.
#
# "Minimal" means the configuration device-check.sh builds: MPI, HDF5 and OpenCL off, no cairo.
# What is left REQUIRED by CMakeLists.txt and src/*/CMakeLists.txt: OpenBLAS (cblas.h, libopenblas
# and its LAPACK), LAPACKE (data), libyaml through pkg-config (config), zlib and libpng (io,
# data), dlpack/dlpack.h (gpuarray), plus their run-time libraries (libgfortran5, libquadmath0,
# libtmglib3) and pkgconf for machines that have no pkg-config. All for amd64 (the GPU machine
# is x86-64 whatever this machine is). Run it on a Debian 12 machine with network access;
# `apt-get download` needs no root. Usage: scripts/device-deps.sh [DIR] (default .devdeps).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${1:-.devdeps}
pkgs=(
  libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libquadmath0
  liblapacke-dev liblapacke libtmglib3
  libyaml-dev libyaml-0-2
  zlib1g-dev zlib1g
  libpng-dev libpng16-16
  libdlpack-dev
  pkgconf pkgconf-bin libpkgconf3
  dataset-fashion-mnist
)
mkdir -p "$DIR"
rm -f "$DIR"/*.deb
arch_opts=()
if [ "$(dpkg --print-architecture)" != amd64 ]; then
  # Another host architecture: ask for amd64 packages with a private package list.
  mkdir -p /tmp/mt-devdeps-lists/partial
  arch_opts=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64
             -oDir::State::Lists=/tmp/mt-devdeps-lists)
  apt-get "${arch_opts[@]}" update >/dev/null
fi
(cd "$DIR" && apt-get "${arch_opts[@]}" download "${pkgs[@]/%/:amd64}")
# Epochs appear as "%3a" in the file names: keep names to letters, digits and ._+-
for f in "$DIR"/*%3a*.deb; do [ -e "$f" ] && mv "$f" "${f//%3a/_}"; done
# NCCL's header (mltrain loads libnccl.so.2 at run time and needs only nccl.h to build its NCCL
# backend; GPU machines often have the library from Python wheels but not the header).
CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
if [ -e "$CUDA_HOME/include/nccl.h" ]; then
  mkdir -p "$DIR/include"
  cp "$CUDA_HOME/include/nccl.h" "$DIR/include/"
fi
du -sh "$DIR"
ls "$DIR"
