#!/usr/bin/env bash
# Collects the Debian packages flatface needs beyond libtorch (headers, libraries, gnuplot for the
# report figures) into one folder, for a GPU machine that has a torch 2.x wheel, a compiler and
# CMake but none of our -dev packages and no network. bench/gpu_check.sh unpacks it there.
#   bash cmake/gpu-kit.sh [OUT_DIR]      (default: kit/, which .gitignore keeps out of git)
# Run on Debian 12 (bookworm): its glibc 2.36 is older than any current GPU image's, so the
# libraries load on Debian 13, Ubuntu 24.04 and the like. The shared libraries the kit's files
# need are followed until nothing is missing but the platform's own: glibc, libstdc++, libgcc_s
# and zlib, which every machine that runs a torch wheel has.
set -euo pipefail
out=$(realpath -m "${1:-$(dirname "${BASH_SOURCE[0]}")/../kit}")
. /etc/os-release
[[ ${VERSION_CODENAME:-} == bookworm ]] ||
  echo "gpu-kit.sh: warning: made on ${PRETTY_NAME:-unknown}, not Debian 12: the kit needs that glibc or newer" >&2

# What flatface includes and links (see cmake/install-deps.sh), by Debian 12's package names.
packages=(
  libtomlplusplus-dev libcli11-dev libspdlog-dev libfmt-dev catch2
  libhdf5-dev libhdf5-103-1 libhdf5-cpp-103-1 libsz2 libaec0
  libboost1.74-dev libboost-filesystem1.74-dev libboost-filesystem1.74.0
  libboost-system1.74-dev libboost-system1.74.0
  libturbojpeg0-dev libturbojpeg0 libstb-dev libstb0
  gnuplot-nox
)
# Sonames the target machine is assumed to have.
platform='^(libc|libm|libdl|libpthread|librt|libutil|libresolv|ld-linux-x86-64|libstdc\+\+|libgcc_s|libz)\.so'

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
rm -f "$out"/*.deb

download() {  # download PKG...: into $out, unpacked into $work/root
  (cd "$out" && apt-get download -qq "$@")
  for p in "$@"; do dpkg-deb -x "$out/${p}"_*.deb "$work/root"; done
}

# The libraries the unpacked files need that neither they nor the platform provide: sonames in
# the ELF files' NEEDED entries, and the targets of dangling links (a -dev package's libfoo.so
# points into the runtime package).
missing_libraries() {
  local provided needed dangling
  provided=$(find "$work/root" -name '*.so*' -xtype f -printf '%f\n' | sort -u)
  needed=$(find "$work/root" -type f \( -name '*.so*' -o -path '*/bin/*' \) -exec sh -c \
    'for f; do readelf -d "$f" 2>/dev/null | sed -n "s/.*(NEEDED).*\[\(.*\)\]/\1/p"; done' _ {} + | sort -u)
  dangling=$(find "$work/root" -name '*.so*' -xtype l -exec readlink {} \; | xargs -r -n 1 basename | sort -u)
  comm -23 <(printf '%s\n' $needed $dangling | sort -u) <(echo "$provided") | grep -Ev "$platform" || true
}

apt-get update -qq || true
libraries=$(ldconfig -p)
download "${packages[@]}"
for round in 1 2 3 4 5 6 7 8; do
  mapfile -t sonames < <(missing_libraries)
  ((${#sonames[@]})) || break
  extra=()
  for so in "${sonames[@]}"; do
    path=$(awk -v so="$so" '$1 == so && /x86-64/ {print $NF}' <<<"$libraries" | head -n 1)
    [[ -n $path ]] || path=$(find /usr/lib/x86_64-linux-gnu -maxdepth 3 -name "$so" -print -quit)
    [[ -n $path ]] || { echo "gpu-kit.sh: no package on this machine provides $so" >&2; exit 1; }
    pkg=$( (dpkg -S "$(realpath "$path")" 2>/dev/null || dpkg -S "$path") | head -n 1 | cut -d: -f1)
    [[ " ${extra[*]} " == *" $pkg "* ]] || extra+=("$pkg")
  done
  echo "round $round: ${sonames[*]} -> ${extra[*]}"
  download "${extra[@]}"
done
left=$(missing_libraries)
[[ -z $left ]] || { echo "gpu-kit.sh: still missing: $left" >&2; exit 1; }
(cd "$out" && ls -1 ./*.deb | sed 's|^\./||' >PACKAGES)
echo "kit: $out: $(ls "$out"/*.deb | wc -l) packages, $(du -sh --apparent-size "$out" | cut -f1)" \
  "($(du -s --apparent-size --block-size=1M "$out" | cut -f1) MiB; unpacked $(du -sh "$work/root" | cut -f1))"
