#!/usr/bin/env bash
# Run every fuzz target for a bounded time: fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
# (default 60 s each, all targets). Needs nightly Rust and cargo-fuzz
# (`cargo install cargo-fuzz`). Seeds come from the committed fixtures; crashes land in
# fuzz/artifacts/<target>/ and the script exits non-zero if any target found one.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(csv npy xgboost lightgbm registry header)
fi
fixtures=../tests/fixtures
mkdir -p corpus/csv corpus/npy corpus/xgboost corpus/lightgbm corpus/registry corpus/header
cp ../runbooks/*.rhai corpus/header/ 2>/dev/null || true
printf '[{"name":"m","version":"v1","model_path":"a","is_production":true,"status":"production","promoted_at":null,"metrics":{}}]' > corpus/registry/one
# Seeds: real files of each kind (the CSV target takes a mode byte first).
for f in "$fixtures"/xgboost/*/data.csv "$fixtures"/parquet/validation.csv; do
    name=${f#"$fixtures"/}
    name=${name//\//_}
    { printf '\x0c'; head -c 4096 "$f"; } > "corpus/csv/$name"
done
for f in "$fixtures"/xgboost/*/model.json "$fixtures"/xgboost/*/model.ubj; do
    name=${f#"$fixtures"/}
    cp "$f" "corpus/xgboost/${name//\//_}"
done
for f in "$fixtures"/lightgbm/*/model.txt; do
    name=${f#"$fixtures"/}
    tail -c +6 "$f" > "corpus/lightgbm/${name//\//_}"
done
python3 - <<'PY'
import struct
def npy(descr, shape, data):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    d += " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode() + data
open("corpus/npy/m64", "wb").write(npy("<f8", "(2, 3)", struct.pack("<6d", *range(6))))
open("corpus/npy/m32be", "wb").write(npy(">f4", "(3, 2)", struct.pack(">6f", *range(6))))
open("corpus/npy/huge", "wb").write(npy("<f8", "(1000000000000, 9)", b"\0" * 800))
PY
# Build once, then run each target's binary for a bounded time (running the binaries
# directly keeps `cargo fuzz run` from rebuilding with other flags).
for t in "${targets[@]}"; do
    cargo +nightly fuzz build -O "$t" >/dev/null
done
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release"
case "$bin" in /*) ;; *) bin="$PWD/$bin" ;; esac
status=0
for t in "${targets[@]}"; do
    echo "== fuzz target $t for ${seconds}s"
    mkdir -p "artifacts/$t"
    "$bin/$t" "corpus/$t" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 2>&1 \
        | grep -E "^Done|stat::number_of_executed_units|stat::peak_rss|SUMMARY|ERROR|panicked" || true
    if [ -n "$(ls -A "artifacts/$t" 2>/dev/null)" ]; then
        echo "!! $t found inputs that fail: $(ls "artifacts/$t")"
        status=1
    fi
done
exit $status
