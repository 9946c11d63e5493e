#!/usr/bin/env bash
# The out-of-tree plugin story, end to end: install flatface into a fresh prefix, build this
# folder's plugins against the installed CMake package (a head on the SDK's cosine-head base, a
# perturbation made of its step operations, a dataset format on its image helpers), load them
# with the installed host, which is not rebuilt, and train with them through `flatface run`,
# checking the results against the in-tree plugins they mirror (the out-of-tree head is loaded
# beside the installed in-tree heads).
# Usage: run.sh <flatface build dir> [cmake] [python with h5py and numpy]
set -euo pipefail
build=$(cd "$1" && pwd)
cmake=${2:-cmake}
python=${3:-python3}
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

step "the SDK headers are installed"
for h in cosine_head option_checks step_ops aace_loss image_codec decoded_pairs sample_order \
  formats/recordio formats/insightface_rec formats/verification_bin formats/lfw_pairs \
  formats/image_folder; do
  [[ -f $prefix/include/flatface/$h.hpp ]] || fail "no installed flatface/$h.hpp"
done

step "build the plugins out of tree against the installed package"
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
for p in angular_margin sam_ball npy_stack; do [[ -f $work/plugin/$p.so ]] || fail "no $p.so"; done

step "the installed host loads it from FLATFACE_PLUGIN_PATH"
export FLATFACE_PLUGIN_PATH=$work/plugin
"$flatface" plugins --kind head | tee "$work/heads.txt"
grep -E "^head +angular-margin +.*$work/plugin/angular_margin.so" "$work/heads.txt" >/dev/null ||
  fail "angular-margin not listed"
# Beside the installed in-tree heads, combined-margin among them.
grep -E "^head +combined-margin +.*$plugin_dir/combined-margin.so" "$work/heads.txt" >/dev/null ||
  fail "the installed combined-margin not listed beside the out-of-tree head"
"$flatface" plugins --kind perturbation | tee "$work/perturbations.txt"
grep -E "^perturbation +sam-ball +.*$work/plugin/sam_ball.so" "$work/perturbations.txt" >/dev/null ||
  fail "sam-ball not listed"

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
head = { plugin = "angular-margin", m = 0.25 }
perturbation = { plugin = "sam", rho = [0.05, 0.1] }
TOML
"$flatface" validate "$work/oot.toml" | tee "$work/validate.txt"
grep -qF "$work/oot.toml: ok (4 runs, 1 setups, 2 seeds" "$work/validate.txt" || fail "validate"

step "a typo in its options is caught by the host"
sed -i 's/m = 0.25/mm = 0.25/' "$work/oot.toml"
set +e
"$flatface" validate "$work/oot.toml" 2>"$work/typo.txt"
code=$?
set -e
cat "$work/typo.txt"
[[ $code -eq 2 ]] || fail "validate of a typo exited $code, not 2"
grep -qF "oot.toml:16:37: unknown key 'mm' for head 'angular-margin' (known: m, plugin, s)" \
  "$work/typo.txt" || fail "typo message"
step "flatface run trains with them; results against the in-tree sam, arcface and softmax"
cat >"$work/train.toml" <<TOML
[experiment]
name = "out-of-tree-train"
seeds = [0]
device = "cpu"
output = "$work/results"

[data]
train = { plugin = "synthetic", identities = 8, images_per_identity = 4 }
eval = [{ name = "pairs", plugin = "synthetic", identities = 8, images_per_identity = 4, verification_identities = 4, pairs = 20 }]

[model]
backbone = { plugin = "iresnet-small" }

[train]
epochs = 2
batch_size = 32  # the whole set: epoch 1 is one step, taken at the seed's weights

[[setup]]
name = "sam"
head = { plugin = "arcface", m = 0.5 }
perturbation = { plugin = "sam", rho = 0.1 }

[[setup]]
name = "sam-ball-l2"
head = { plugin = "arcface", m = 0.5 }
perturbation = { plugin = "sam-ball", rho = 0.1 }

[[setup]]
name = "sam-ball-linf"
head = { plugin = "arcface", m = 0.5 }
perturbation = { plugin = "sam-ball", ball = "linf", rho = 1e-4 }

[[setup]]
name = "arcface"
head = { plugin = "arcface", m = 0.5 }
perturbation = { plugin = "none" }

[[setup]]
name = "angular"
head = { plugin = "angular-margin", m = 0.5 }
perturbation = { plugin = "none" }

[[setup]]
name = "combined"
head = { plugin = "combined-margin", m1 = 1.0, m2 = 0.5, m3 = 0.0 }
perturbation = { plugin = "none" }

[[setup]]
name = "softmax"
head = { plugin = "softmax" }
perturbation = { plugin = "none" }
TOML
"$flatface" run "$work/train.toml" >"$work/run.log" 2>&1 || { cat "$work/run.log"; fail "run"; }
"$python" "$here/compare_runs.py" plugins "$work/results" || fail "results of the out-of-tree plugins"

step "a dataset format out of tree: flatface data info reads .npy stacks through npy-stack, which recognises them"
"$python" "$here/make_npy_faces.py" "$work/faces"
"$flatface" data info "$work/faces/x.npy" | tee "$work/faces/info-x.txt"
grep -qF "$work/faces/x.npy: dataset plugin 'npy-stack', training set" "$work/faces/info-x.txt" ||
  fail "data info x.npy: not read by npy-stack as a training set"
grep -qF "training set: 32 images, 8 classes" "$work/faces/info-x.txt" || fail "data info x.npy size"
grep -qF "first image:  56x56" "$work/faces/info-x.txt" || fail "data info x.npy first image"
grep -qF "array:  uint8 [32,56,56,3]" "$work/faces/info-x.txt" || fail "data info x.npy details"
"$flatface" data info "$work/faces/pairs.npy" | tee "$work/faces/info-pairs.txt"
grep -qF "$work/faces/pairs.npy: dataset plugin 'npy-stack', verification set" \
  "$work/faces/info-pairs.txt" || fail "data info pairs.npy: not a verification set"
grep -qF "verification set: 20 pairs (10 same, 10 different)" "$work/faces/info-pairs.txt" ||
  fail "data info pairs.npy pairs"

step "without the plugin no one recognises a .npy, and the error lists what the plugins read"
set +e
FLATFACE_PLUGIN_PATH= "$flatface" data info "$work/faces/x.npy" 2>"$work/faces/unrecognised.txt"
code=$?
set -e
cat "$work/faces/unrecognised.txt"
[[ $code -eq 2 ]] || fail "data info of an unrecognised .npy exited $code, not 2"
grep -qF "x.npy': no dataset plugin recognises it;" "$work/faces/unrecognised.txt" ||
  fail "unrecognised message"
grep -qF "insightface-bin: *.bin files" "$work/faces/unrecognised.txt" || fail "unrecognised list"

step "npy-stack trains as the same images in an image folder do"
for format in npy folder; do
  if [[ $format == npy ]]; then
    train="{ plugin = \"npy-stack\", path = \"$work/faces/x.npy\" }"
  else
    train="{ plugin = \"image-folder\", path = \"$work/faces/folder\" }"
  fi
  cat >"$work/faces/$format.toml" <<TOML
[experiment]
name = "faces-$format"
seeds = [0]
device = "cpu"
output = "$work/faces/results-$format"

[data]
train = $train
eval = [{ name = "pairs", plugin = "npy-stack", images = "$work/faces/pairs.npy", issame = "$work/faces/pairs.issame.npy" }]

[model]
backbone = { plugin = "iresnet-small" }

[train]
epochs = 2
batch_size = 8

[[setup]]
name = "sam"
head = { plugin = "arcface", m = 0.5 }
perturbation = { plugin = "sam", rho = 0.1 }
TOML
  "$flatface" validate "$work/faces/$format.toml" | tee "$work/faces/validate-$format.txt"
  grep -qF "$work/faces/$format.toml: ok (1 runs, 1 setups, 1 seeds, 1 verification sets)" \
    "$work/faces/validate-$format.txt" || fail "validate $format"
  "$flatface" run "$work/faces/$format.toml" >"$work/faces/$format.log" 2>&1 ||
    { cat "$work/faces/$format.log"; fail "run on $format"; }
done
"$python" "$here/compare_runs.py" same "$work/faces/results-npy" "$work/faces/results-folder" ||
  fail "npy-stack and image-folder differ"

step "flatface eval reads pairs.npy through npy-stack, which recognises it, as the experiment's named set"
ckpt=$(find "$work/faces/results-npy" -name '*.ckpt' | head -n1)
[[ -n $ckpt ]] || fail "no checkpoint in $work/faces/results-npy"
"$flatface" eval --checkpoint "$ckpt" pairs "$work/faces/pairs.npy" | tee "$work/faces/eval.txt"
# Two rows named "pairs" (the experiment's set, then the file's stem), the same 20 pairs, so the
# same accuracy, threshold and TAR.
rows=$(awk '$1 == "pairs" { $1 = ""; print }' "$work/faces/eval.txt")
[[ $(wc -l <<<"$rows") -eq 2 ]] || fail "eval: expected two rows named pairs"
[[ $(sort -u <<<"$rows" | wc -l) -eq 1 ]] || fail "eval of pairs.npy differs from the named set"
grep -qE "^ *20 " <<<"$rows" || fail "eval of pairs.npy: not 20 pairs"
echo "out-of-tree plugins: ok"
