#!/usr/bin/env bash
# ctest install_layout: `cmake --install` into a temporary prefix, then run the installed
# binaries from another temporary folder, PPSIM_SOURCE_DIR / PPSIM_DATA_DIR unset.
# Every data file must come from PREFIX/share/ppsim: each preset, profile, device spec
# and the renderer is then removed from the install in turn, and ppsim must fail naming
# where it looked, never finding the copy in the source tree (which still has it).
#   tests/install_check.sh CMAKE BUILD_DIR SOURCE_DIR
set -uo pipefail
cmake=$1 build=$2 src=$3
unset PPSIM_SOURCE_DIR PPSIM_DATA_DIR
prefix=$(mktemp -d "${TMPDIR:-/tmp}/ppsim-install.XXXXXX")
work=$(mktemp -d "${TMPDIR:-/tmp}/ppsim-work.XXXXXX")
trap 'rm -rf "$prefix" "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$cmake" --install "$build" --prefix "$prefix" >"$work/install.log" 2>&1 || { cat "$work/install.log"; fail "cmake --install"; }
data=$prefix/share/ppsim
for f in bin/ppsim bin/ppsim-calibrate share/ppsim/timeline.schema.json share/ppsim/tools/render.mjs \
         share/ppsim/configs/clusters/dgx-h100.json share/ppsim/configs/models/gpt3-1.3b.json \
         share/ppsim/configs/profiles/h200.json share/ppsim/configs/devices/h100-sxm.json; do
  [ -f "$prefix/$f" ] || fail "not installed: $f"
done

cd "$work" || fail "cd $work"
# Presets named by bare name: found under share/ppsim/configs/{clusters,models,profiles,devices}.
cat >measured.json <<'JSON'
{ "model": { "preset": "gpt3-1.3b", "vocab": 0, "micro_batch_size": 1, "dtype": "bf16" },
  "costs": { "profile": "h200" },
  "cluster": { "preset": "dgx-h100", "nodes": 1 },
  "pipeline": { "schedule": "1f1b", "stages": 4, "microbatches": 8 } }
JSON
sed 's/"profile": "h200"/"device": "h100-sxm"/' measured.json >roofline.json

for c in measured roofline; do
  "$prefix/bin/ppsim" run $c.json --report $c.report.json >$c.out 2>$c.err || { cat $c.err; fail "ppsim run $c.json"; }
  grep -q '"iteration_time_ms"' $c.report.json || fail "$c.report.json has no iteration_time_ms"
  grep -q "$data/configs/" $c.out || fail "ppsim run $c.json: costs not read from $data: $(sed -n 2p $c.out)"
  ! grep -qF "$src" $c.out $c.report.json || fail "ppsim run $c.json names the source tree $src"
  # The same numbers as the build-tree binary (only the file names differ).
  "$build/bin/ppsim" run $c.json >$c.build.out 2>&1 || fail "build-tree ppsim run $c.json"
  diff <(grep -v '^model ' $c.out) <(grep -v '^model ' $c.build.out) || fail "installed and build-tree ppsim differ on $c.json"
done

"$prefix/bin/ppsim" schedule --list >list.out 2>&1 || fail "ppsim schedule --list"
grep -q '^1f1b ' list.out || fail "ppsim schedule --list lacks 1f1b"
"$prefix/bin/ppsim-calibrate" validate "$data/configs/profiles/h200.json" >validate.out 2>&1 ||
  { cat validate.out; fail "ppsim-calibrate validate"; }
grep -q 'valid' validate.out || fail "ppsim-calibrate validate said: $(cat validate.out)"

render=no
if ! command -v node >/dev/null; then
  echo "SKIP part: node not on PATH, --svg not checked"
elif [ ! -f "$data/node_modules/vega-lite/package.json" ]; then
  echo "SKIP part: no node_modules installed (run tools/setup.sh before installing), --svg not checked"
else
  render=yes
  "$prefix/bin/ppsim" run measured.json --svg g.svg >svg.out 2>svg.err || { cat svg.err; fail "ppsim run --svg"; }
  head -c 4 g.svg | grep -q '<svg' || fail "g.svg is not an SVG"
fi

# Each file gone from the install: ppsim must fail (exit 2, one line saying where it
# looked) although the source tree still holds it.
expect_not_found() {  # FILE (under share/ppsim) CONFIG [ARGS...]
  local f=$1 c=$2
  shift 2
  mv "$data/$f" "$data/$f.off" || fail "mv $f"
  "$prefix/bin/ppsim" run "$c" "$@" >nf.out 2>nf.err
  local rc=$?
  mv "$data/$f.off" "$data/$f"
  [ $rc -eq 2 ] || fail "without $f: exit $rc, expected 2 (found elsewhere: the source tree?) $(cat nf.err)"
  [ "$(wc -l <nf.err)" -eq 1 ] || fail "without $f: not one line: $(cat nf.err)"
  grep -q 'looked for' nf.err || fail "without $f: does not say where it looked: $(cat nf.err)"
  ! grep -qF "$src" nf.err || fail "without $f: looked in the source tree: $(cat nf.err)"
}
expect_not_found configs/clusters/dgx-h100.json measured.json
expect_not_found configs/models/gpt3-1.3b.json measured.json
expect_not_found configs/profiles/h200.json measured.json
expect_not_found configs/devices/h100-sxm.json roofline.json
[ $render = yes ] && expect_not_found tools/render.mjs measured.json --svg g2.svg

# PPSIM_DATA_DIR comes before the installed folder: pointing it at the source tree
# finds the preset removed from the install.
mv "$data/configs/clusters/dgx-h100.json" "$work/hidden.json"
PPSIM_DATA_DIR=$src "$prefix/bin/ppsim" run measured.json >env.out 2>&1 || fail "PPSIM_DATA_DIR=$src: $(cat env.out)"
grep -qF "$src/configs/profiles/h200.json" env.out || fail "PPSIM_DATA_DIR=$src: profile not read from there"
echo "install_layout: ok (prefix $prefix, render checked: $render)"
