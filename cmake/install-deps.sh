#!/usr/bin/env bash
# Installs every Debian 12 package flatface needs to build, test and run. Safe to run again.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev python3-torch python3-numpy python3-h5py
  libboost-dev libboost-filesystem-dev libboost-math-dev
  libtomlplusplus-dev libcli11-dev libhdf5-dev libspdlog-dev catch2
  libturbojpeg0-dev libjpeg-dev libpng-dev libstb-dev
  libopenblas0-openmp libgloo-dev
  gnuplot-nox
  clang libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "flatface dependencies: all ${#packages[@]} packages installed"
