#!/usr/bin/env bash
# The out-of-tree plugin story, end to end: install flatface into a fresh prefix, build this
# folder's plugin against the installed CMake package, and load it with the installed host, which
# is not rebuilt. Usage: run.sh <flatface build dir> [cmake]
set -euo pipefail
build=$(cd "$1" && pwd)
cmake=${2:-cmake}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/flatface-out-of-tree.XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

step "install the build into $work/prefix"
prefix=$work/prefix
"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log"
flatface=$prefix/bin/flatface
[[ -x $flatface ]] || fail "no installed $flatface"
libflatface=$(find "$prefix" -name libflatface.so | head -n1)
[[ -n $libflatface ]] || fail "no installed libflatface.so"
plugin_dir=$(dirname "$libflatface")/flatface/plugins
ls "$plugin_dir"/*.so >/dev/null || fail "no installed plugins in $plugin_dir"

step "installed binaries resolve every library without the build tree"
for f in "$flatface" "$libflatface" "$plugin_dir"/*.so; do
  if readelf -d "$f" | grep -E 'R(UN)?PATH' | grep -qF "$build"; then
    fail "$f has an RPATH into the build tree: $(readelf -d "$f" | grep -E 'R(UN)?PATH')"
  fi
  if ldd "$f" | grep -q 'not found'; then fail "$f: $(ldd "$f" | grep 'not found')"; fi
done

step "the installed host lists its installed plugins, not the build tree's"
FLATFACE_PLUGIN_PATH= "$flatface" plugins >"$work/plugins.txt"
cat "$work/plugins.txt"
grep -qF "$plugin_dir/" "$work/plugins.txt" || fail "installed plugins not listed"
if grep -qF "$build/" "$work/plugins.txt"; then fail "build-tree plugins listed"; fi

step "build the plugin out of tree against the installed package"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# Where the host's own build found its dependencies (a torch wheel, the GPU kit), if not in /usr.
deps=$(sed -n 's/^CMAKE_PREFIX_PATH:[A-Z]*=//p' "$build/CMakeCache.txt")
"$cmake" -S "$here" -B "$work/plugin" "${generator[@]}" "${launcher[@]}" \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix${deps:+;$deps}" >"$work/configure.log" ||
  { cat "$work/configure.log"; fail "configure"; }
"$cmake" --build "$work/plugin" >"$work/build.log" || { cat "$work/build.log"; fail "build"; }
[[ -f $work/plugin/combined_margin.so ]] || fail "no combined_margin.so"

step "the installed host loads it from FLATFACE_PLUGIN_PATH"
export FLATFACE_PLUGIN_PATH=$work/plugin
"$flatface" plugins --kind head | tee "$work/heads.txt"
grep -E "^head +combined-margin +.*$work/plugin/combined_margin.so" "$work/heads.txt" >/dev/null ||
  fail "combined-margin not listed"

step "an experiment using it validates"
cat >"$work/oot.toml" <<'TOML'
[experiment]
name = "out-of-tree"
seeds = [0, 1]

[data]
train = { plugin = "synthetic" }

[model]
backbone = { plugin = "iresnet-small" }

[train]
epochs = 1

[[setup]]
name = "combined"
head = { plugin = "combined-margin", m2 = 0.25 }
perturbation = { plugin = "sam", rho = [0.05, 0.1] }
TOML
"$flatface" validate "$work/oot.toml" | tee "$work/validate.txt"
grep -qF "$work/oot.toml: ok (4 runs, 1 setups, 2 seeds" "$work/validate.txt" || fail "validate"

step "a typo in its options is caught by the host"
sed -i 's/m2 = 0.25/m22 = 0.25/' "$work/oot.toml"
set +e
"$flatface" validate "$work/oot.toml" 2>"$work/typo.txt"
code=$?
set -e
cat "$work/typo.txt"
[[ $code -eq 2 ]] || fail "validate of a typo exited $code, not 2"
grep -qF "oot.toml:16:38: unknown key 'm22' for head 'combined-margin' (known: m1, m2, m3, plugin, s)" \
  "$work/typo.txt" || fail "typo message"
echo "out-of-tree plugin: ok"
