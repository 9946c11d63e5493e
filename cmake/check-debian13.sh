#!/usr/bin/env bash
# Builds flatface where current users are: a Debian 13 (trixie) chroot with Debian's libtorch 2.6
# and Catch2 v3, and runs the whole test suite there on the CPU.
#   --cuda      instead: libtorch-cuda-dev 2.6 + the CUDA 12.4 toolkit; configures the `cuda`
#               preset and compiles and links everything, tests included (nothing runs: no GPU).
#   --kit DIR   instead: a clean chroot with only libtorch, Python's torch and a compiler, plus the
#               GPU kit in DIR (cmake/gpu-kit.sh): bench/gpu_check.sh --cpu builds and tests there.
#   --root DIR  the chroot (default /var/tmp/flatface-debian13[-cuda|-kit]); made with debootstrap
#               when absent, reused when present. --jobs N (default 2).
# Run as root; it needs nothing but Debian's mirror (FLATFACE_DEBIAN_MIRROR). It downloads about
# 1 GiB (CPU), 4 GiB (--cuda): not part of .ci/run. Prints how long each part took.
set -euo pipefail

mode=cpu kit="" root="" jobs=2
while (($#)); do
  case "$1" in
    --cuda) mode=cuda ;;
    --kit) mode=kit kit=$(realpath "$2") && shift ;;
    --root) root=$2 && shift ;;
    --jobs) jobs=$2 && shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' && exit 0 ;;
    *) echo "check-debian13.sh: unknown argument '$1' (see --help)" >&2 && exit 2 ;;
  esac
  shift
done
[[ $(id -u) -eq 0 ]] || { echo "check-debian13.sh: run as root (debootstrap, chroot, mount)" >&2; exit 2; }
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared_dir=$(realpath -m "$source_dir/../shared")
mirror=${FLATFACE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
case "$mode" in
  cpu) root=${root:-/var/tmp/flatface-debian13} ;;
  *) root=${root:-/var/tmp/flatface-debian13-$mode} ;;
esac

timings=() failed=0
phase() {  # phase NAME COMMAND...: runs the command, records its duration; stops at a failure
  local name=$1 start=$SECONDS status=0
  shift
  echo "== $name"
  "$@" || status=$?
  timings+=("$(printf '%-28s %5d s%s' "$name" $((SECONDS - start)) "$( ((status)) && echo "  FAILED ($status)")")")
  if ((status)); then
    failed=$status
    summary
    exit "$status"
  fi
}
summary() {
  echo "== $( ((failed)) && echo FAILED || echo done): $mode check in $root ($(du -sh "$root" --one-file-system 2>/dev/null | cut -f1))"
  printf '%s\n' "${timings[@]}"
}

in_chroot() {
  chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CCACHE_DIR=/var/cache/flatface-ccache CCACHE_MAXSIZE=5G bash -euo pipefail -c "$1"
}

make_chroot() {
  if [[ -f $root/etc/debian_version ]]; then
    echo "reusing $root (Debian $(cat "$root/etc/debian_version"))"
  else
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap
    debootstrap --variant=minbase trixie "$root" "$mirror"
  fi
  # contrib and non-free hold libtorch-cuda-dev and the CUDA toolkit.
  rm -f "$root/etc/apt/sources.list"
  cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: trixie trixie-updates
Components: main contrib non-free non-free-firmware
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"  # no services start in the chroot
  chmod +x "$root/usr/sbin/policy-rc.d"
}

mounted=()
mount_all() {
  mkdir -p "$root/src/flatface" "$root/src/shared"
  mount -t proc proc "$root/proc" && mounted+=("$root/proc")
  mount --rbind /dev "$root/dev" && mounted+=("$root/dev")
  mount --bind "$source_dir" "$root/src/flatface" && mounted+=("$root/src/flatface")
  if [[ -d $shared_dir ]]; then
    mount --bind -o ro "$shared_dir" "$root/src/shared" && mounted+=("$root/src/shared")
  fi
  if [[ -n $kit ]]; then
    mkdir -p "$root/src/kit"
    mount --bind -o ro "$kit" "$root/src/kit" && mounted+=("$root/src/kit")
  fi
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
}
unmount_all() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
}
trap unmount_all EXIT

# libtorch-cuda-dev pulls in nvidia-cudnn, a downloader whose post-install script fetches cuDNN
# from NVIDIA and fails offline. It is neutralised: cuDNN stays absent (torch's CMake then says
# USE_CUDNN=0), which only matters for running, and running needs a GPU anyway.
install_cuda() {
  in_chroot '
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends libtorch-cuda-dev nvidia-cuda-toolkit || true
    if [[ -f /var/lib/dpkg/info/nvidia-cudnn.postinst ]]; then
      printf "#!/bin/sh\nexit 0\n" >/var/lib/dpkg/info/nvidia-cudnn.postinst
    fi
    dpkg --configure -a
    apt-get install -y -qq -f --no-install-recommends
    dpkg-query -W libtorch-cuda-dev nvidia-cuda-toolkit
    nvcc --version | tail -n 2'
}

# Only what a GPU machine with a torch wheel has: libtorch, Python's torch, a compiler, CMake.
install_kit_base() {
  in_chroot '
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends g++ cmake ninja-build libtorch-dev \
      python3-torch python3-numpy python3-h5py python3-pil'
}

build_cpu() {
  in_chroot "cd /src/flatface && cmake --preset default -B /var/tmp/build -DCMAKE_INSTALL_PREFIX=/var/tmp/build/install
    cmake --build /var/tmp/build -j $jobs"
}
test_cpu() {
  in_chroot "cd /var/tmp/build && ctest -j 2 --output-on-failure --timeout 1200"
}

# The CUDA libtorch's executables link against a libtorch_cuda that needs libcudnn.so.9, which is
# absent (see install_cuda): ld is told to leave those undefined symbols to the loader.
build_cuda() {
  in_chroot "cd /src/flatface && CMAKE_PREFIX_PATH=/usr cmake --preset cuda -B /var/tmp/build-cuda \
      -DCMAKE_INSTALL_PREFIX=/var/tmp/build-cuda/install \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined 2>&1 | tee /var/tmp/cuda-configure.log
    grep -E 'CUDA|cuDNN|CUDNN' /var/tmp/cuda-configure.log | head -n 20 || true
    cmake --build /var/tmp/build-cuda -j $jobs
    echo \"linked: \$(find /var/tmp/build-cuda/bin -maxdepth 1 -type f -executable | wc -l) executables, \$(find /var/tmp/build-cuda/plugins -name '*.so' | wc -l) plugins\"
    ldd /var/tmp/build-cuda/bin/flatface | grep -E 'torch_cuda|cudart|cudnn' || true"
}

build_with_kit() {
  in_chroot "bash /src/flatface/bench/gpu_check.sh --cpu --kit /src/kit --out /var/tmp/kit-check"
}

phase "chroot ($root)" make_chroot
mount_all
case "$mode" in
  cpu)
    phase "dependencies" in_chroot "bash /src/flatface/cmake/install-deps.sh"
    phase "build (libtorch 2.6, CPU)" build_cpu
    phase "tests" test_cpu
    ;;
  cuda)
    phase "dependencies" in_chroot "bash /src/flatface/cmake/install-deps.sh"
    phase "CUDA libtorch + toolkit" install_cuda
    phase "build (cuda preset)" build_cuda
    ;;
  kit)
    phase "libtorch + compiler only" install_kit_base
    phase "kit: build + tests" build_with_kit
    ;;
esac
summary
