#!/usr/bin/env bash
# GPU check, ready for a machine with CUDA: the default workflow on the CPU (run "default"), the
# same workflow with capture and encoding on CUDA (run "gpu", whose report's devices section
# compares the two runs), the capture and encode benchmarks on CUDA, and the candle-mi suite's
# GPU rows (benchmarks/gpu_references.py: with bitsandbytes installed, the bnb NF4 reference is
# made). Everything it measures
# lands in one folder:
#
#     benchmarks/gpu_check.sh [OUT]          (OUT defaults to results/gpu_check)
#
# Run it from a working directory holding config/ (the repository root, or a copy of config/).
# Without CUDA every CUDA step is skipped with the reason in OUT/SUMMARY.md, and what can run
# still runs: the CPU workflow and a dry run of the CUDA run's DAG.
#
# GPU_ROWS_ONLY=1 runs the GPU rows alone, in one call on a bare GPU machine (no workflow runs):
# benchmarks/gpu_paths.py (CUDA against the CPU; encoding at GemmaScope 2B size against
# min(GEMM roofline, host read rate)), the encode benchmark on CUDA, the capture benchmark on CUDA
# where make run's model is there, and the candle-mi suite's GPU rows.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-results/gpu_check}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
SNAKEMAKE=${SNAKEMAKE:-$ROOT/.venv/bin/snakemake}
CORES=${CORES:-all}
mkdir -p "$OUT"
SUMMARY="$OUT/SUMMARY.md"
echo "# GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)" > "$SUMMARY"
note() { echo "- $*" | tee -a "$SUMMARY"; }
workflow() { "$SNAKEMAKE" --snakefile "$ROOT/Snakefile" --directory "$PWD" --cores "$CORES" "$@"; }

if [ "${GPU_ROWS_ONLY:-0}" = 1 ]; then
    "$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "GPU_ROWS_ONLY=1 needs CUDA"'
    start=$(date +%s)
    "$PYTHON" "$ROOT/benchmarks/gpu_paths.py" "$OUT" > "$OUT/gpu_paths.log" 2>&1
    note "CUDA paths against the CPU, encoding against min(roofline, read): gpu_paths.json ($(( $(date +%s) - start )) s)"
    "$PYTHON" "$ROOT/benchmarks/encode_throughput.py" --device cuda --skip-peer --skip-memory \
        > "$OUT/encode_cuda.json" 2> "$OUT/encode_cuda.log"
    note "encode benchmark on CUDA: encode_cuda.json ($(( $(date +%s) - start )) s)"
    if [ -d "$ROOT/resources/models/gemma-3-270m" ]; then
        "$PYTHON" "$ROOT/benchmarks/capture_throughput.py" --device cuda --skip-peer --skip-memory \
            > "$OUT/capture_cuda.json" 2> "$OUT/capture_cuda.log"
        note "capture benchmark on CUDA: capture_cuda.json ($(( $(date +%s) - start )) s)"
    else
        note "capture benchmark on CUDA: skipped: no resources/models/gemma-3-270m (make run fetches it)"
    fi
    "$PYTHON" "$ROOT/benchmarks/gpu_references.py" "$OUT" > "$OUT/gpu_references.log" 2>&1
    note "candle-mi suite's GPU rows: gpu_references.json ($(( $(date +%s) - start )) s in all)"
    exit 0
fi

"$PYTHON" - > "$OUT/device.json" <<'PY'
import json, platform, torch
cuda = torch.cuda.is_available()
print(json.dumps({
    "torch": torch.__version__,
    "cuda_available": cuda,
    "cuda": torch.version.cuda,
    "device": torch.cuda.get_device_name(0) if cuda else None,
    "capability": list(torch.cuda.get_device_capability(0)) if cuda else None,
    "cpu": platform.processor() or platform.machine(),
}, indent=1))
PY
CUDA=$("$PYTHON" -c 'import torch; print(int(torch.cuda.is_available()))')
note "device: $(tr -d '\n' < "$OUT/device.json")"

workflow --configfile config/config.yaml > "$OUT/cpu_run.log" 2>&1
note "CPU run (run default): done; log cpu_run.log"

"$PYTHON" - config/config.yaml "$OUT/gpu.yaml" <<'PY'
import sys, yaml
with open(sys.argv[1], encoding="utf-8") as handle:
    config = yaml.safe_load(handle)
config["capture"].update(run="gpu", device="cuda")
config.setdefault("encoding", {})["device"] = "cuda"
config.setdefault("crossval", {}).update(compare_run="default", report_only=True)
with open(sys.argv[2], "w", encoding="utf-8") as handle:
    yaml.safe_dump(config, handle, sort_keys=False)
PY
note "CUDA run config: gpu.yaml (capture.run gpu, capture.device and encoding.device cuda, crossval.compare_run default)"

if [ "$CUDA" = 1 ]; then
    start=$(date +%s)
    workflow --configfile "$OUT/gpu.yaml" > "$OUT/gpu_run.log" 2>&1
    note "CUDA run (run gpu): done in $(( $(date +%s) - start )) s; log gpu_run.log"
    cp results/reports/gpu/crossval.html results/reports/gpu/crossval.json "$OUT/"
    note "report with the devices section (CPU against CUDA): crossval.html, crossval.json"
    "$PYTHON" "$ROOT/benchmarks/capture_throughput.py" --device cuda --skip-peer --storage \
        > "$OUT/capture_cuda.json" 2> "$OUT/capture_cuda.log"
    note "capture benchmark on CUDA: capture_cuda.json"
    "$PYTHON" "$ROOT/benchmarks/encode_throughput.py" --device cuda --skip-peer \
        > "$OUT/encode_cuda.json" 2> "$OUT/encode_cuda.log"
    note "encode benchmark on CUDA: encode_cuda.json"
    "$PYTHON" "$ROOT/benchmarks/gpu_references.py" "$OUT" > "$OUT/gpu_references.log" 2>&1
    note "candle-mi suite's GPU rows (families on CUDA, bnb NF4 made): gpu_references.json"
else
    reason="no CUDA device (torch.cuda.is_available() is False)"
    workflow --configfile "$OUT/gpu.yaml" --dry-run > "$OUT/gpu_run_dry.log" 2>&1
    note "CUDA run: skipped: $reason; its DAG was built (dry run: gpu_run_dry.log)"
    note "devices section (CPU against CUDA): skipped: $reason"
    note "capture benchmark on CUDA: skipped: $reason"
    note "encode benchmark on CUDA: skipped: $reason"
    note "candle-mi suite's GPU rows (gpu_references.py): skipped: $reason"
fi
