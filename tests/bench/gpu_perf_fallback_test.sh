#!/usr/bin/env bash
# bench/gpu_perf.sh's fallback to the warp attention kernels (issue 11), on its CPU rehearsal
# (GPU_PERF_DEVICE=cpu: tiny model, 3 steps, f32; the eager peer only, which may fail without torch):
#   1. a default run that fails (a stand-in binary that exits 3 unless OM_ATTENTION_KERNEL=warp) is run
#      again at once with OM_ATTENTION_KERNEL=warp; the report shows the failed row, the warp row with its
#      tokens/s, and names the fallback and why ("the default run: exit 3");
#   2. GPU_PERF_ATTENTION_FAILED=1 (what gpu_session.sh passes when cuda_attention_test failed): the warp run
#      comes first, the default run last, and the default's row is marked as not counted (or, when it
#      failed as well, the reason named is still the test);
#   3. neither: no warp run (the rehearsal's default), no fallback named.
#   gpu_perf_fallback_test.sh BUILD_DIR WORK_DIR
set -euo pipefail
BUILD=$(cd "$1" && pwd) WORK=$2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
rm -rf "$WORK" && mkdir -p "$WORK/fake/launch"
fail() { echo "FAIL: $*"; exit 1; }
ln -s "$BUILD/launch/ortho_data" "$WORK/fake/launch/ortho_data"
cat > "$WORK/fake/launch/ortho_megatron" <<EOF
#!/usr/bin/env bash
[[ \${OM_ATTENTION_KERNEL:-} == warp ]] || { echo "stand-in: the tensor-core attention failed" >&2; exit 3; }
exec "$BUILD/launch/ortho_megatron" "\$@"
EOF
chmod +x "$WORK/fake/launch/ortho_megatron"
export OMP_NUM_THREADS=1 GPU_PERF_DEVICE=cpu GPU_PERF_VARIANTS=eager

# perf NAME BUILD_DIR [VAR=VALUE...]: one rehearsal into $WORK/NAME (its exit status is not the point: it is
# 1 whenever the peer cannot run here); prints the order of our runs.
perf() {
  local name=$1 build=$2; shift 2
  env "$@" OM_BUILD_DIR="$build" OUT="$WORK/$name" bash "$SRC/bench/gpu_perf.sh" > "$WORK/$name.out" 2>&1 || true
  [[ -f $WORK/$name/gpu_perf.md ]] || { cat "$WORK/$name.out"; fail "$name: no gpu_perf.md"; }
  sed -n 's/^=== ours tiny \([^:]*\):.*/\1/p' "$WORK/$name/runs.log" | paste -sd' '
}
# warp_tps NAME: the warp-attention row's tokens/s from gpu_perf.json (empty when it has none).
warp_tps() {
  python3 -c 'import json, sys
rows = json.load(open(sys.argv[1]))["runs"]
print(next((r["tps"] for r in rows if r.get("variant") == "warp-attention" and r["tps"]), ""))' \
      "$WORK/$1/gpu_perf.json"
}

# 1. The default run fails: the fallback runs at once and stands for ours.
order=$(perf failing "$WORK/fake")
[[ $order == "default warp-attention" ]] || fail "failing: our runs were '$order', want 'default warp-attention'"
[[ -n $(warp_tps failing) ]] || fail "failing: the warp-attention row has no tokens/s"
grep -q '| tiny | ortho_megatron | exit 3 |' "$WORK/failing/gpu_perf.md" || fail "failing: no 'exit 3' row"
grep -q 'the default run: exit 3' "$WORK/failing/gpu_perf.md" || fail "failing: the reason is not named"
echo "ok failing default run: '$order', warp row $(warp_tps failing) tokens/s"

# 2. The attention test failed: warp first, the suspect default last and not counted.
order=$(perf suspect "$BUILD" GPU_PERF_ATTENTION_FAILED=1)
[[ $order == "warp-attention default" ]] || fail "suspect: our runs were '$order', want 'warp-attention default'"
[[ -n $(warp_tps suspect) ]] || fail "suspect: the warp-attention row has no tokens/s"
grep -q 'tensor-core attention failed its test: not counted' "$WORK/suspect/gpu_perf.md" ||
  fail "suspect: the default row is not marked"
grep -q 'cuda_attention_test failed in gpu_check' "$WORK/suspect/gpu_perf.md" || fail "suspect: the reason is not named"
echo "ok attention test failed: '$order'"
# ... and when the suspect default run then fails too, the reason given is still the test's.
perf suspect_failing "$WORK/fake" GPU_PERF_ATTENTION_FAILED=1 > /dev/null
grep -q 'cuda_attention_test failed in gpu_check' "$WORK/suspect_failing/gpu_perf.md" ||
  fail "suspect_failing: the reason is not the test's"
echo "ok attention test failed, default run failed: the test named"

# 3. Neither: the default run alone.
order=$(perf plain "$BUILD")
[[ $order == "default" ]] || fail "plain: our runs were '$order', want 'default'"
! grep -q 'fallback\|not counted' "$WORK/plain/gpu_perf.md" || fail "plain: a fallback is named"
echo "ok no failure: '$order'"
