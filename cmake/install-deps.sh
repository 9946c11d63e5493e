#!/usr/bin/env bash
# Installs every Debian package flatface needs to build, test and run, on Debian 12 (bookworm:
# libtorch 1.13, Catch2 v2) or Debian 13 (trixie: libtorch 2.6, Catch2 v3). Safe to run again.
set -euo pipefail
. /etc/os-release
# The only names that differ between the two releases: the clang runtime for the fuzzers.
case "${VERSION_CODENAME:-}" in
  bookworm) clang_runtime=libclang-rt-14-dev ;;
  trixie) clang_runtime=libclang-rt-19-dev ;;
  *)
    echo "install-deps.sh: Debian 12 (bookworm) or 13 (trixie) expected, found ${PRETTY_NAME:-unknown}" >&2
    exit 2
    ;;
esac
packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtorch-dev python3-torch python3-numpy python3-h5py python3-pil
  libboost-dev libboost-filesystem-dev libboost-math-dev
  libtomlplusplus-dev libcli11-dev libhdf5-dev libspdlog-dev catch2
  libturbojpeg0-dev libjpeg-dev libpng-dev libstb-dev
  libopenblas0-openmp libgloo-dev
  gnuplot-nox nlohmann-json3-dev
  clang "$clang_runtime"
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
echo "flatface dependencies ($VERSION_CODENAME): all ${#packages[@]} packages installed"
