#!/usr/bin/env bash
# The one script that checks the CUDA LoRA kernels on a GPU machine:
#   1. the op oracle (f16 + bf16, every case) against the CPU reference,
#   2. compute-sanitizer memcheck and racecheck on the reduced oracle run,
#   3. the LoRA benchmark (bench/lora),
# writing full logs to $OUT (default ./gpu-out) and printing a short summary last.
#
# Binaries: uses $BIN (default build-cuda-90/bin), built on a CPU machine with nvcc and carried along:
#   cmake -S src/backends/cuda/standalone -B build-cuda-90 -G Ninja -DCMAKE_BUILD_TYPE=Release \
#     -DCMAKE_CUDA_ARCHITECTURES=90a && ninja -C build-cuda-90 punica_lora_oracle punica_bench_lora
# (sm_90a only: 30 MB, small enough to carry); if they do not start there, builds them the same way there.
#   scripts/gpu_check.sh [all|oracle|sanitize|bench|quick|profile|compare|rule|probe|iterate|ab|stream|final|final-san|env-ab|astream|ncu-cluster|ncu-old-new|few-rows|cluster-size|cs-san|cs-final|prefill|prefill-ab|ncu-prefill]
#   (all = oracle by shape + oracle with the cluster kernel off (the older paths) + sanitizers + bench;
#    quick = oracle + sanitizer + --quick bench; profile = all + Nsight Compute on the prefill kernels;
#    COMPARE_PATHS=1 also benches every row with the single-launch decode kernel off, PUNICA_LORA_FUSED=0;
#    compare = every path in one call: oracle with the cluster kernel forced at each token-tile height
#    (16 / 32 / 64 rows) and by shape, the 4096x4096 path comparison (bench --compare), compute-sanitizer
#    memcheck + racecheck on the reduced oracle by shape and with 64-row tiles forced;
#    rule = oracle by shape + bench --compare only (after a change of the choice rule);
#    stream = the streaming decode kernels: oracle forced / by shape / off, memcheck forced, --compare, distinct rows;
#    final = the end-of-session check: oracle with the cluster kernel forced (if it fails, the rest runs
#    with it off), by shape, the older paths alone, the streaming kernels forced, the full benchmark, the
#    phase trace (AB_ENV=VAR=value: also the 4096x4096 f16 rows under that setting, side by side);
#    final-san = its sanitizers: memcheck and racecheck (f16), by shape and streaming forced;
#    ncu-cluster = Nsight Compute on one cluster-kernel launch of each of r = 16 and r = 64, B = 1 (warp states,
#    scheduler, instruction and launch statistics, per-SASS-instruction stall samples as CSV): where a phase's
#    cycles go (docs: next steps, sixth session); ncu-old-new = the same for one row (NCU_ROW="workload rank B")
#    with this build and the carried old one (OLD_XZ);
#    few-rows = the cluster kernel's leaner few-row path: oracles (by shape, cluster forced, forced with 4-row
#    CUDA-core tiles), memcheck / racecheck with the cluster kernel forced, the 4096x4096 f16 rows of this build
#    and of the previous one (OLD_XZ, default build-cuda-90/old/punica_bench_lora.xz) side by side, the trace;
#    env-ab = environment settings (AB_ENV="VAR=value ...") against the default in one binary: oracles (by shape, cluster
#    forced, by shape under each setting), with AB_SAN=1 memcheck / racecheck under the first setting, the 4096x4096
#    f16 rows under each setting and by default joined by row, the phase trace by default;
#    astream = the adapter-streaming decode kernel: oracles forced (the rest runs with it off if that fails) and by shape,
#    memcheck / racecheck (f16, distinct cases) forced, the full benchmark, the distinct / noadapt rows off and forced;
#    cluster-size = the cluster kernel's 8-, 4- and 2-CTA clusters: oracles forced with each, memcheck forced with 4,
#    the 4096x4096 f16 rows by shape, of the previous build (OLD_XZ) and forced with each size, joined by row
#    (CS_BENCH, CS_MEMCHECK, CS_RACECHECK and CS_FULL_BENCH choose the parts: see the mode);
#    cs-san = compute-sanitizer runs by tool, dtype and cluster size (CS_SAN), then with CS_SAN_BENCH=1 the full benchmark;
#    prefill = the prefill kernel (lora_prefill.cu): oracles forced and by shape, the prefill rows of every shape by shape
#    and with it off (PUNICA_LORA_PREFILL=0) joined by row, memcheck and racecheck (f16) with it forced; PF_FULL_BENCH=1:
#    then the full benchmark; prefill-ab = the prefill rows (f16) by shape and off, joined; the phase trace; then Nsight
#    Compute on one prefill launch of each of r = 16 and r = 64 with PF_NCU=1; ncu-prefill = one prefill-kernel
#    launch of each rank under Nsight Compute with per-SASS-instruction stall samples (CSV), as ncu-cluster)
set -uo pipefail
mode=${1:-all}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
BIN=${BIN:-build-cuda-90/bin}
export CUDA_MODULE_LOADING=EAGER  # load every kernel up front, never inside a graph capture

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv >"$OUT/device.txt" 2>&1
date -u +"%Y-%m-%dT%H:%M:%SZ" >>"$OUT/device.txt"

if ! "$BIN/punica_lora_oracle" --filter no-such-case >/dev/null 2>&1; then
  echo "carried binaries do not start here; building with cmake" | tee -a "$OUT/device.txt"
  cmake -S src/backends/cuda/standalone -B build-cuda-lora-device -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CUDA_ARCHITECTURES=90a >"$OUT/build.log" 2>&1 &&
    cmake --build build-cuda-lora-device -j 16 >>"$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
  BIN=build-cuda-lora-device/bin
fi

status=0
summary=()
run_oracle() {  # log name, timeout (s), oracle args...
  local name=$1 t=$2; shift 2
  timeout "$t" "$BIN/punica_lora_oracle" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?; [[ $rc == 0 ]] || status=1
  summary+=("$name ($*): rc=$rc, $(tail -1 "$OUT/$name.log")")
  [[ $(grep -c FAIL "$OUT/$name.log") == 0 ]] || summary+=("$(grep FAIL "$OUT/$name.log" | head -6 | cut -c1-400)")
}
run_sanitizer() {  # tool, timeout (s), oracle args...
  local tool=$1 t=$2; shift 2
  local args="$*"; local name="${tool}${args// /}${PUNICA_LORA_CS:+cs$PUNICA_LORA_CS}"; name=${name//-/}
  timeout "$t" compute-sanitizer --tool "$tool" --error-exitcode 3 "$BIN/punica_lora_oracle" --reduced --dtype all "$@" \
    >"$OUT/$name.log" 2>&1
  local rc=$?; [[ $rc == 0 ]] || status=1
  summary+=("compute-sanitizer $tool (reduced oracle $*): rc=$rc, $(grep -h "ERROR SUMMARY\|RACECHECK SUMMARY\|lora oracle:" "$OUT/$name.log" | tr '\n' ' ' | cut -c1-300)")
}
run_bench() {  # log name, timeout (s), benchmark args...
  local name=$1 t=$2; shift 2
  timeout "$t" "$BIN/punica_bench_lora" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?; [[ $rc == 0 ]] || status=1
  summary+=("punica_bench_lora $*: rc=$rc: $(grep -h "copy bw\|launch floor\|code fetch\|resident at once\|acceptance rows" "$OUT/$name.log" | tr '\n' ' ')")
}
# Whether the oracle run logged as $OUT/<name>.log failed a case (or did not finish).
oracle_failed() { grep -q FAIL "$OUT/$1.log" || ! grep -q " 0 failed" "$OUT/$1.log"; }
# The oracle (f16 + bf16) by shape ("shape"), or with the cluster kernel forced at a cluster size (16 / 8 / 4 / 2).
run_oracle_at() {
  if [[ $1 == shape ]]; then run_oracle oracle_auto 90 --dtype all
  elif [[ $1 == 16 ]]; then run_oracle oracle_cs16 90 --dtype all --cluster 1
  else PUNICA_LORA_CS=$1 run_oracle "oracle_cs$1" 90 --dtype all --cluster 1; fi
}
# compute-sanitizer on the reduced oracle, by shape or with the cluster kernel forced at a cluster size.
run_sanitizer_at() {  # tool, timeout (s), dtype (f16 / bf16 / all), size ("shape" or 16 / 8 / 4 / 2)
  if [[ $4 == shape ]]; then run_sanitizer "$1" "$2" --dtype "$3"
  else PUNICA_LORA_CS=$4 run_sanitizer "$1" "$2" --dtype "$3" --cluster 1; fi
}
if [[ $mode == all || $mode == oracle || $mode == quick || $mode == profile ]]; then
  run_oracle oracle 300 --dtype all
  run_oracle oracle_old_paths 300 --dtype all --cluster 0 --stream 0 --prefill 0
fi
if [[ $mode == all || $mode == sanitize || $mode == quick || $mode == profile ]]; then
  for tool in memcheck racecheck; do run_sanitizer $tool 240; done
  run_sanitizer memcheck 240 --cluster 0
fi
if [[ $mode == all || $mode == bench || $mode == quick || $mode == profile ]]; then
  if [[ $mode == quick ]]; then run_bench bench 420 --quick --csv "$OUT/bench.csv"; else run_bench bench 420 --csv "$OUT/bench.csv"; fi
  echo "== benchmark, h=4096x4096 f16 rows (full table: bench.log) =="
  grep -E "^(dtype|f16 +4096x4096)" "$OUT/bench.log" | cut -c1-160
  if [[ ${COMPARE_PATHS:-0} == 1 ]]; then  # the same rows with the single-launch decode kernel off
    PUNICA_LORA_FUSED=0 timeout 300 "$BIN/punica_bench_lora" --no-baselines >"$OUT/bench_split.log" 2>&1
    summary+=("benchmark, PUNICA_LORA_FUSED=0: rc=$?: $(grep -h "acceptance rows" "$OUT/bench_split.log")")
  fi
fi
if [[ $mode == profile ]]; then
  timeout 240 ncu --kernel-name regex:lora_ --launch-skip 40 --launch-count 8 --section SpeedOfLight \
    --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
    "$BIN/punica_bench_lora" --quick --only prefill --rank 64 --no-baselines >"$OUT/ncu.log" 2>&1
  summary+=("ncu rc=$?: $(grep -c 'lora_' "$OUT/ncu.log") kernel lines in ncu.log")
fi
if [[ $mode == compare ]]; then
  run_oracle oracle_m16 60 --dtype all --cluster 1
  run_bench compare 300 --compare --csv "$OUT/compare.csv"
  run_oracle oracle_m32 60 --dtype all --cluster 2
  run_oracle oracle_m64 60 --dtype all --cluster 4
  run_oracle oracle_auto 60 --dtype all
  run_oracle oracle_old_paths 60 --dtype all --cluster 0 --stream 0 --prefill 0
  run_sanitizer memcheck 90
  run_sanitizer racecheck 120
  run_sanitizer memcheck 60 --cluster 4
  echo "== compare (us) =="
  grep -E "^(launch floor|dtype|f16 |bf16 )" "$OUT/compare.log" | cut -c1-120
fi
if [[ $mode == rule ]]; then
  run_oracle oracle_auto 60 --dtype all
  run_bench compare 240 --compare --csv "$OUT/compare.csv"
fi
if [[ $mode == probe ]]; then  # a short look: the cluster kernel's oracle, the phase trace, Nsight on prefill
  run_oracle oracle_m16 60 --dtype all --cluster 1
  run_oracle oracle_auto 60 --dtype all
  run_bench trace 40 --trace
  for r in 16 64; do
    timeout 120 ncu --kernel-name regex:lora_ --launch-skip 24 --launch-count 6 --section SpeedOfLight \
      --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
      "$BIN/punica_bench_lora" --quick --only prefill --rank $r --no-baselines >"$OUT/ncu_r$r.log" 2>&1
    summary+=("ncu r=$r rc=$?: $(grep -c 'lora_' "$OUT/ncu_r$r.log") kernel lines")
  done
  grep -E "^trace|phase|shrink mma|call k" "$OUT/trace.log" | cut -c1-250
fi
if [[ $mode == iterate ]]; then  # after a kernel change: every path's oracle, the trace, --compare, prefill rows
  run_oracle oracle_m16 60 --dtype all --cluster 1
  run_oracle oracle_m64 60 --dtype all --cluster 4
  run_oracle oracle_auto 60 --dtype all
  run_oracle oracle_old_paths 60 --dtype all --cluster 0 --stream 0 --prefill 0
  run_bench trace 60 --trace
  run_bench compare 300 --compare --csv "$OUT/compare.csv"
  run_bench prefill 60 --only prefill --no-baselines
  grep -E "^instruction|^trace|phase|shrink mma|call k" "$OUT/trace.log" | cut -c1-250
  grep -E "^(launch floor|dtype|f16 |bf16 )" "$OUT/compare.log" | cut -c1-130
  grep -E "prefill" "$OUT/prefill.log" | cut -c1-130
fi
if [[ $mode == ab ]]; then  # A/B of two builds ($BIN and $BIN2, e.g. a build flag): oracles, rank-64 and prefill rows
  run_oracle oracle_auto 60 --dtype all
  run_oracle oracle_m16 60 --dtype all --cluster 1
  run_oracle oracle_old_paths 60 --dtype all --cluster 0 --stream 0 --prefill 0
  BIN_A=$BIN
  BIN=$BIN2 run_oracle oracle_b_auto 60 --dtype all
  for v in a b; do
    if [[ $v == b ]]; then BIN=$BIN2; fi
    run_bench bench_${v}_r64 200 --rank 64 --dtype f16 --no-baselines --csv "$OUT/bench_${v}_r64.csv"
    run_bench bench_${v}_prefill16 60 --only prefill --rank 16 --dtype f16 --no-baselines
  done
  BIN=$BIN_A
  # a's row (up to % of copy bandwidth), then b's us / shrink / expand / GB/s / %: columns 42-80 of a row
  paste -d' ' <(grep -E "^f16 " "$OUT/bench_a_r64.log" | cut -c1-80) <(grep -E "^f16 " "$OUT/bench_b_r64.log" | cut -c42-80)
  grep -h prefill "$OUT/bench_a_prefill16.log" "$OUT/bench_b_prefill16.log" | cut -c1-100
fi
if [[ $mode == stream ]]; then  # the streaming decode kernels: oracle forced / by shape / off, memcheck, compare
  run_oracle oracle_stream 90 --dtype all --stream 1 --cluster 0 --prefill 0
  run_oracle oracle_auto 60 --dtype all
  run_oracle oracle_no_stream 60 --dtype all --stream 0 --cluster 0
  run_sanitizer memcheck 120 --stream 1 --cluster 0 --prefill 0
  run_bench compare 360 --compare --dtype f16 --csv "$OUT/compare.csv"
  run_bench stream_bw 120 --only distinct --dtype f16
  grep -E "^(launch floor|dtype|f16 |bf16 )" "$OUT/compare.log" | cut -c1-140
  grep -E "^(dtype|f16 )" "$OUT/stream_bw.log" | cut -c1-130
fi
if [[ $mode == final ]]; then
  run_oracle oracle_m16 60 --dtype all --cluster 1
  if oracle_failed oracle_m16; then
    export PUNICA_LORA_CLUSTER=0
    summary+=("cluster kernel FAILED the oracle: the rest runs with PUNICA_LORA_CLUSTER=0")
  fi
  run_oracle oracle_auto 60 --dtype all
  run_oracle oracle_old_paths 60 --dtype all --cluster 0 --stream 0 --prefill 0
  run_oracle oracle_stream 60 --dtype all --cluster 0 --stream 1
  run_bench bench 330 --csv "$OUT/bench.csv"
  run_bench trace 40 --trace
  grep -E "^trace|phase|shrink mma" "$OUT/trace.log" | cut -c1-250
  if [[ -n ${AB_ENV:-} ]]; then  # e.g. AB_ENV=PUNICA_LORA_GEMV=0: the 4096x4096 f16 rows with it, next to bench's
    env "$AB_ENV" timeout 150 "$BIN/punica_bench_lora" --shape 4096x4096 --dtype f16 --no-baselines \
      --csv "$OUT/bench_ab.csv" >"$OUT/bench_ab.log" 2>&1
    summary+=("bench with $AB_ENV: rc=$?")
    echo "== 4096x4096 f16: r workload B D, with $AB_ENV: us | default: us rule =="
    paste -d'|' <(grep -E "^f16 +4096x4096" "$OUT/bench_ab.log" | cut -c19-49) \
      <(grep -E "^f16 +4096x4096" "$OUT/bench.log" | cut -c42-49,97-106)
  fi
fi
if [[ $mode == env-ab ]]; then  # settings against the default, same binary: AB_ENV="VAR=value ..." (default PUNICA_LORA_GEMV=0)
  read -r -a settings <<<"${AB_ENV:-PUNICA_LORA_GEMV=0}"
  run_oracle oracle_auto 90 --dtype all
  run_oracle oracle_m16 90 --dtype all --cluster 1
  b="--shape 4096x4096 --dtype f16 --no-baselines"
  joined=()
  n=0
  for ab in "${settings[@]}"; do
    n=$((n + 1))
    eval "$ab run_oracle oracle_ab$n 90 --dtype all"  # VAR=value for the function call only
    if [[ ${AB_SAN:-0} == 1 && $n == 1 ]]; then  # the sanitizers under the first setting
      eval "$ab run_sanitizer memcheck 200"
      eval "$ab run_sanitizer racecheck 240 --dtype f16"
    fi
    env "$ab" timeout 200 "$BIN/punica_bench_lora" $b --csv "$OUT/bench_ab$n.csv" >"$OUT/bench_ab$n.log" 2>&1
    summary+=("bench with $ab rc=$?")
    joined+=("ab$n=$OUT/bench_ab$n.csv")
  done
  run_bench bench_default 200 $b --csv "$OUT/bench_default.csv"
  run_bench trace 60 --trace
  echo "== trace by default =="; grep -E "^trace|phase|shrink mma" "$OUT/trace.log" | cut -c1-250
  echo "== 4096x4096 f16 us: abN = with the N-th of: ${settings[*]}; default =="
  python3 scripts/join_bench_csv.py "${joined[@]}" "default=$OUT/bench_default.csv"
fi
if [[ $mode == astream ]]; then  # the adapter-streaming decode kernel (eleventh session): oracles, sanitizers, full bench
  run_oracle oracle_astream 90 --dtype all --astream 1
  if oracle_failed oracle_astream; then
    export PUNICA_LORA_ASTREAM=0
    summary+=("adapter-streaming kernel FAILED the oracle: the rest runs with PUNICA_LORA_ASTREAM=0")
  fi
  run_oracle oracle_auto 90 --dtype all
  run_sanitizer memcheck 150 --astream 1
  run_sanitizer racecheck 150 --dtype f16 --astream 1 --filter distinct
  run_bench bench 200 --csv "$OUT/bench.csv"
  b="--shape 4096x4096 --dtype f16 --no-baselines"
  for w in distinct noadapt; do
    PUNICA_LORA_ASTREAM=0 timeout 100 "$BIN/punica_bench_lora" $b --only $w --csv "$OUT/off_$w.csv" >/dev/null 2>&1
    PUNICA_LORA_ASTREAM=1 timeout 100 "$BIN/punica_bench_lora" $b --only $w --csv "$OUT/on_$w.csv" >/dev/null 2>&1
    python3 scripts/join_bench_csv.py "off=$OUT/off_$w.csv" "forced=$OUT/on_$w.csv"
  done
  grep -E "^(dtype|f16 +4096x4096)" "$OUT/bench.log" | cut -c1-120
fi
# The previous build's benchmark, carried xz-compressed (OLD_XZ), unpacked to $old: old / new in one call.
unpack_old() {
  old=/tmp/punica_bench_lora_old
  xz -dc "${OLD_XZ:-build-cuda-90/old/punica_bench_lora.xz}" >"$old" && chmod +x "$old"
}
if [[ $mode == few-rows ]]; then  # the cluster kernel's few-row instance (seventh session) against the carried old build
  unpack_old
  # ptxas rebuilding the shared-memory window base (S2UR SR_CgaCtaId) inside the mma loops: count per instance
  for b in "$BIN/punica_bench_lora" "$old"; do
    cuobjdump -sass "$b" 2>/dev/null | awk '/Function : .*lora_cluster_kernel/{n=$0; sub(/.*kernelI/,"",n); sub(/EEEvNS1_.*/,"",n)}
      /Function : /{if ($0 !~ /lora_cluster_kernel/) n=""} n && /SR_CgaCtaId/{c[n]++} END{for (k in c) print k, c[k]}' |
      sort | tr '\n' ';' | sed "s|^|CgaCtaId reads per instance, $(basename "$b"): |"; echo
  done
  run_oracle oracle_auto 60 --dtype all
  run_oracle oracle_m16 60 --dtype all --cluster 1
  PUNICA_LORA_GEMV=0 run_oracle oracle_m16_mma 60 --dtype all --cluster 1
  PUNICA_LORA_GEMV=1 run_oracle oracle_m16_gemv1 60 --dtype all --cluster 1
  run_sanitizer memcheck 150 --cluster 1
  run_bench bench_new 200 --shape 4096x4096 --dtype f16 --no-baselines --csv "$OUT/bench_new.csv"
  timeout 200 "$old" --shape 4096x4096 --dtype f16 --no-baselines --csv "$OUT/bench_old.csv" >"$OUT/bench_old.log" 2>&1
  summary+=("old bench rc=$?")
  PUNICA_LORA_GEMV=1 run_bench bench_gemv1 200 --shape 4096x4096 --dtype f16 --no-baselines --csv "$OUT/bench_gemv1.csv"
  run_bench trace 40 --trace
  grep -E "^trace|phase|shrink mma" "$OUT/trace.log" | cut -c1-250
  echo "== 4096x4096 f16: r workload B D, old build: us | PUNICA_LORA_GEMV=1: us | new: us GB/s %copy rule =="
  paste -d'|' <(grep -E "^f16 " "$OUT/bench_old.log" | cut -c19-49) <(grep -E "^f16 " "$OUT/bench_gemv1.log" | cut -c42-49) \
    <(grep -E "^f16 " "$OUT/bench_new.log" | cut -c42-49,67-79,97-106)
fi
if [[ $mode == cs-san ]]; then  # sanitizers for the cluster sizes: CS_SAN="tool:dtype:size ..." (size "shape": by shape)
  for item in ${CS_SAN:-memcheck:all:shape memcheck:all:8 memcheck:all:2 racecheck:f16:8}; do
    IFS=: read -r tool dt cs <<<"$item"
    run_sanitizer_at "$tool" 240 "$dt" "$cs"
  done
  if [[ ${CS_SAN_BENCH:-0} == 1 ]]; then
    run_bench bench 330 --csv "$OUT/bench.csv"
    grep -E "^(dtype|f16 +4096x4096)" "$OUT/bench.log" | cut -c19-49,97-106
  fi
fi
if [[ $mode == cluster-size ]]; then  # the cluster kernel with 8-, 4- and 2-CTA clusters (eighth session)
  # CS_BENCH: sizes whose forced benchmark runs (default "8 4 2"; 4 and 2 at rank 16 only, where they exist);
  # CS_MEMCHECK: sizes memcheck runs forced with (default 4; 16 = the 16-CTA kernel forced)
  unpack_old
  for cs in shape 16 8 4 2; do run_oracle_at $cs; done
  for cs in ${CS_MEMCHECK:-4}; do run_sanitizer_at memcheck 150 all "$cs"; done
  b="--shape 4096x4096 --dtype f16 --no-baselines"
  run_bench bench_new 200 $b --csv "$OUT/bench_new.csv"
  grep -h "resident at once" "$OUT/bench_new.log"
  timeout 200 "$old" $b --csv "$OUT/bench_old.csv" >"$OUT/bench_old.log" 2>&1
  summary+=("old bench rc=$?")
  joined=("new=$OUT/bench_new.csv" "old=$OUT/bench_old.csv")
  for cs in ${CS_BENCH-8 4 2}; do
    if [[ $cs == 8 ]]; then r=""; else r="--rank 16"; fi
    PUNICA_LORA_CLUSTER=1 PUNICA_LORA_CS=$cs run_bench bench_cs$cs 200 $b $r --csv "$OUT/bench_cs$cs.csv"
    joined+=("cs$cs=$OUT/bench_cs$cs.csv")
  done
  echo "== 4096x4096 f16 us: new = by shape; old = previous build (OLD_XZ); csN = cluster kernel forced with N-CTA clusters where they fit =="
  python3 scripts/join_bench_csv.py "${joined[@]}"
  # CS_RACECHECK: sizes racecheck (f16) runs forced with; CS_FULL_BENCH=1: then the full benchmark (bench.csv)
  for cs in ${CS_RACECHECK:-}; do run_sanitizer_at racecheck 240 f16 "$cs"; done
  if [[ ${CS_FULL_BENCH:-0} == 1 ]]; then run_bench bench 330 --csv "$OUT/bench.csv"; fi
fi
# One launch of the cluster kernel (f16, 4096x4096), SM clocks left as they are (--clock-control none), warp-state
# sampling at the shortest interval; the report is kept and its source page (per-SASS-instruction stall samples)
# printed as CSV: which instruction of which phase the warps wait on. Args: tag, benchmark binary, workload,
# rank, batch.
ncu_cluster_row() {
  local tag=$1 bench=$2 w=$3 r=$4 b=$5
  timeout 200 ncu --kernel-name regex:lora_cluster --launch-skip 20 --launch-count 1 --clock-control none \
    --warp-sampling-interval 0 --import-source no --section WarpStateStats \
    --section SchedulerStats --section InstructionStats --section LaunchStats --section Occupancy \
    --section SpeedOfLight --section SourceCounters --section MemoryWorkloadAnalysis -o "$OUT/ncu_$tag" -f \
    "$bench" --only "$w" --rank "$r" --batch "$b" --dtype f16 --no-baselines --shape 4096x4096 >"$OUT/ncu_$tag.log" 2>&1
  summary+=("ncu $tag ($w r=$r B=$b) rc=$?")
  ncu -i "$OUT/ncu_$tag.ncu-rep" --page details >"$OUT/ncu_${tag}_details.txt" 2>&1
  ncu -i "$OUT/ncu_$tag.ncu-rep" --page source --csv --print-source sass >"$OUT/ncu_${tag}_sass.csv" 2>&1
  rm -f "$OUT/ncu_$tag.ncu-rep"
  grep -E "Duration|Registers Per|Warp Cycles Per Issued|No Eligible|Executed Instructions  " \
    "$OUT/ncu_${tag}_details.txt" | sed "s/^/$tag /" | head -10
}
if [[ $mode == ncu-cluster ]]; then  # r = 16 and r = 64, B = 1
  for r in 16 64; do ncu_cluster_row cluster_r$r "$BIN/punica_bench_lora" distinct $r 1; done
fi
if [[ $mode == ncu-old-new ]]; then  # one row (NCU_ROW="workload rank batch") with this build and the carried old one
  unpack_old
  read -r w r b <<<"${NCU_ROW:-identical 16 16}"
  ncu_cluster_row new_${w}_r${r}_b$b "$BIN/punica_bench_lora" "$w" "$r" "$b"
  ncu_cluster_row old_${w}_r${r}_b$b "$old" "$w" "$r" "$b"
fi
if [[ $mode == ncu-prefill ]]; then  # where the prefill kernel's warps wait, per SASS instruction
  for r in 16 64; do
    timeout 200 ncu --kernel-name regex:lora_prefill --launch-skip 5 --launch-count 1 --clock-control none \
      --warp-sampling-interval 0 --import-source no --section WarpStateStats --section SchedulerStats \
      --section InstructionStats --section LaunchStats --section SpeedOfLight --section SourceCounters \
      --section MemoryWorkloadAnalysis -o "$OUT/ncu_pf$r" -f \
      "$BIN/punica_bench_lora" --only prefill --rank $r --dtype f16 --shape 4096x4096 --no-baselines >"$OUT/ncu_pf$r.log" 2>&1
    summary+=("ncu prefill r=$r rc=$?")
    ncu -i "$OUT/ncu_pf$r.ncu-rep" --page details >"$OUT/ncu_pf${r}_details.txt" 2>&1
    ncu -i "$OUT/ncu_pf$r.ncu-rep" --page source --csv --print-source sass >"$OUT/ncu_pf${r}_sass.csv" 2>&1
    rm -f "$OUT/ncu_pf$r.ncu-rep"
    grep -E "Duration|DRAM Throughput|Warp Cycles Per Issued|No Eligible|Executed Instructions  " "$OUT/ncu_pf${r}_details.txt" | sed "s/^/r$r /"
  done
fi
if [[ $mode == cs-final ]]; then  # the eighth session's last checks: oracles, racecheck, ncu of 16- vs 8-CTA clusters
  for cs in shape 16 8 2; do run_oracle_at $cs; done
  run_sanitizer_at racecheck 240 f16 shape
  for cs in 2 8; do run_sanitizer_at racecheck 240 bf16 $cs; done
  ncu_cluster_row cs16_distinct_r16_b1 "$BIN/punica_bench_lora" distinct 16 1
  PUNICA_LORA_CLUSTER=1 PUNICA_LORA_CS=8 ncu_cluster_row cs8_distinct_r16_b1 "$BIN/punica_bench_lora" distinct 16 1
fi
if [[ $mode == final-san ]]; then  # the sanitizers of the end-of-session check, by shape and streaming forced
  run_sanitizer memcheck 100
  run_sanitizer memcheck 100 --stream 1 --cluster 0 --prefill 0
  run_sanitizer racecheck 170 --dtype f16
  run_sanitizer racecheck 120 --dtype f16 --stream 1 --cluster 0 --prefill 0
fi
if [[ $mode == prefill ]]; then  # the ninth session's prefill kernel
  run_oracle oracle_prefill_forced 150 --dtype all --prefill 1
  run_oracle oracle_auto 150 --dtype all
  b="--only prefill --no-baselines"
  run_bench bench_prefill_new 150 $b --csv "$OUT/prefill_new.csv"
  PUNICA_LORA_PREFILL=0 run_bench bench_prefill_off 150 $b --csv "$OUT/prefill_off.csv"
  echo "== prefill rows us: new = by shape (the prefill kernel); off = PUNICA_LORA_PREFILL=0 (the two-kernel path) =="
  python3 scripts/join_bench_csv.py "new=$OUT/prefill_new.csv" "off=$OUT/prefill_off.csv"
  run_sanitizer memcheck 200 --prefill 1
  run_sanitizer racecheck 240 --dtype f16 --prefill 1
  if [[ ${PF_FULL_BENCH:-0} == 1 ]]; then run_bench bench 330 --csv "$OUT/bench.csv"; fi
fi
if [[ $mode == prefill-ab ]]; then  # two vs one CTA per SM, deep ring, off; ncu
  b="--only prefill --no-baselines --dtype f16"
  run_bench pf_new 150 $b --csv "$OUT/pf_new.csv"
  PUNICA_LORA_PREFILL=0 run_bench pf_off 150 $b --csv "$OUT/pf_off.csv"
  echo "== prefill rows f16 us: new = by shape (the prefill kernel); off = the two-kernel path =="
  python3 scripts/join_bench_csv.py "new=$OUT/pf_new.csv" "off=$OUT/pf_off.csv"
  grep -h "prefill kernel, clusters" "$OUT/pf_new.log"
  timeout 100 "$BIN/punica_bench_lora" --trace --only prefill 2>&1 | grep -A2 "^trace"
  if [[ ${PF_NCU:-0} == 1 ]]; then
    for r in 16 64; do
      timeout 150 ncu --kernel-name regex:lora_prefill --launch-skip 5 --launch-count 1 --section SpeedOfLight \
        --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
        --section SchedulerStats --metrics sm__ctas_launched.min,sm__ctas_launched.max,sm__ctas_launched.sum,sm__cycles_active.min,sm__cycles_active.max,sm__cycles_active.avg,dram__bytes_read.sum,dram__bytes_write.sum \
        "$BIN/punica_bench_lora" --only prefill --rank $r --dtype f16 --shape 4096x4096 --no-baselines >"$OUT/ncu_pf_r$r.log" 2>&1
      summary+=("ncu prefill r=$r rc=$?")
      grep -E "Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|sm__ctas_launched|sm__cycles_active|dram__bytes|No Eligible|Warp Cycles Per Issued|Waves Per SM" "$OUT/ncu_pf_r$r.log" | sed "s/^/r$r /"
    done
  fi
fi
echo "== summary =="
printf '%s\n' "${summary[@]}"
exit $status
