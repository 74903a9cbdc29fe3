#!/usr/bin/env bash
# The GPU path end to end, in one go (issue 22), printing one table at the end:
#   1. the CUDA tests (tests that skip without a CUDA device, plus the precision and VMAS step tests);
#   2. a short training run: device=cuda env.device=cuda env=vmas/balance env.num_envs=4096 (frames/s);
#   3. tools.bench_update on the GPU at BenchMARL's networks: eager, compiled (CUDA graphs), bf16;
#   4. frames/s of marlshare against TorchRL's own MAPPO example loop (tools/torchrl_mappo_ref.py).
#
#   bash tools/gpu_check.sh              # on a CUDA machine (budget: under 8 minutes on one H100)
#   bash tools/gpu_check.sh --cpu        # dry run of every step on the CPU at tiny sizes (plumbing only)
#   make gpu-check GPU_ARGS=--cpu
#
# Installs what it needs into the existing venv (.venv, or $PY): marlshare with its extras if it is not
# importable. torch itself is never reinstalled: a CPU-only torch on a GPU machine stops the script with
# the command that installs the CUDA wheel of the same version. Outputs: outputs/gpu_check/*.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${GPU_CHECK_OUT:-outputs/gpu_check}
CPU=0
[[ "${1:-}" == "--cpu" ]] && CPU=1
mkdir -p "$OUT"
START=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - START )) s)"; }

step "environment"
test -x "$PY" || { python3 -m venv .venv && PY=.venv/bin/python; }
"$PY" -c "import marlshare" 2>/dev/null || "$PY" -m pip install -q -e ".[all,dev]"
"$PY" - <<'EOF' | tee "$OUT/env.txt"
import torch
from marlshare.components.algorithms.precision import native_bf16
print("torch", torch.__version__, "cuda build", torch.version.cuda, "cuda available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("card", torch.cuda.get_device_name(), "bf16", native_bf16("cuda"))
print("cpu bf16", native_bf16("cpu"))
EOF
if [[ $CPU == 0 ]] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  V=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
  echo "no CUDA device visible to torch (a CPU-only wheel?). Install the CUDA wheel of the same version, e.g.:"
  echo "  $PY -m pip install torch==$V --index-url https://download.pytorch.org/whl/cu128"
  echo "or run the plumbing on the CPU: bash tools/gpu_check.sh --cpu"
  exit 2
fi
LIMIT=180  # seconds per step on the GPU; a loaded 2-core CPU needs far longer for the dry run
if [[ $CPU == 1 ]]; then
  LIMIT=600; DEV=cpu; ENVS=8; FPB=800; MB=400; UPD="--quick"; REF="--frames 600 --envs 6 --minibatch 200 --epochs 1 --iters 2 --hidden 16"
else
  DEV=cuda; ENVS=4096; FPB=409600; MB=40960; UPD="--repeats 3"; REF="--iters 4"
fi

step "1. CUDA tests"
timeout 240 "$PY" -m pytest -q -rs -p no:randomly tests/components/test_devices.py tests/components/test_precision.py \
  tests/envs/test_vmas_collection.py 2>&1 | tail -15 | tee "$OUT/tests.txt"
TESTS=$(tail -1 "$OUT/tests.txt")

step "2. training: env=vmas/balance env.num_envs=$ENVS on $DEV"
RUN="$OUT/train_run"
rm -rf "$RUN"
timeout $LIMIT "$PY" -m marlshare train device=$DEV env.device=$DEV env=vmas/balance env.num_envs=$ENVS schedule=single \
  algorithm.frames_per_batch=$FPB algorithm.minibatch_size=$MB algorithm.epochs=10 total_frames=$((3 * FPB)) \
  eval_every=$((100 * FPB)) checkpoint_every=0 logger=csv logger.progress=false run_dir="$RUN" 2>&1 | tail -5
TRAIN_RC=$?

step "3. tools.bench_update on $DEV: eager, compiled, bf16"
timeout $((LIMIT + 60)) "$PY" -m tools.bench_update --device $DEV --settings benchmarl --bf16 --threads 4 $UPD \
  --out "$OUT/bench_update.json" 2>&1 | grep -v -i warn | tail -4

step "4. marlshare against TorchRL's MAPPO example loop on $DEV"
timeout $((LIMIT + 60)) "$PY" -m tools.torchrl_mappo_ref --device $DEV $REF --out "$OUT/torchrl_ref.json" 2>&1 \
  | grep -E "frames/s|Error|error" | tail -5

step "table"
"$PY" - "$OUT" "$DEV" "$TESTS" "$TRAIN_RC" "$ENVS" <<'EOF'
import csv, json, os, statistics, sys
out, dev, tests, train_rc, envs = sys.argv[1:]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
rows = [("CUDA tests" if dev == "cuda" else "tests (CPU dry run)", tests, "all pass")]
try:
    with open(os.path.join(out, "train_run", "metrics.csv")) as f:
        fps = [x for x in (float(r["fps"]) for r in csv.DictReader(f) if r.get("fps"))][1:]
    fps = [x for x in fps if x == x]  # no NaN (rows without an update)
    rows.append((f"train vmas/balance, {envs} envs, frames/s (iterations 2..)", f"{statistics.median(fps):,.0f}", ">= 50,000 on a GPU"))
except (OSError, ValueError, statistics.StatisticsError, KeyError):
    rows.append((f"train vmas/balance, {envs} envs", f"failed (rc {train_rc})", ">= 50,000 on a GPU"))
bu = load("bench_update.json")
if bu:
    r = bu[0]
    rows.append(("update step, BenchMARL networks: eager ms", f"{r['eager_ms']:.2f}", ""))
    rows.append(("  compiled ms (speedup)", f"{r['compiled_ms']:.2f} ({r['speedup']:.2f}x)", "compile " + f"{r['compile_s']:.0f} s"))
    for m in ("eager_bf16", "compiled_bf16"):
        if f"{m}_ms" in r:
            rows.append((f"  {m} ms (vs eager fp32)", f"{r[f'{m}_ms']:.2f} ({r[f'{m}_speedup']:.2f}x)", ""))
else:
    rows.append(("update step bench", "failed", ""))
ref = load("torchrl_ref.json")
if ref and "ratio" in ref:
    rows.append(("TorchRL MAPPO example loop, frames/s", f"{ref['torchrl']['fps']:,.0f}", ""))
    rows.append(("marlshare, same settings, frames/s", f"{ref['marlshare']['fps']:,.0f}", ""))
    rows.append(("marlshare / TorchRL example", f"{ref['ratio']:.2f}x", ">= 1.0x"))
else:
    rows.append(("marlshare vs TorchRL example", "failed", ">= 1.0x"))
card = (ref or {}).get("card") or ("CPU dry run" if dev == "cpu" else "?")
print(f"\ngpu_check on {card} (device {dev})\n")
print("| check | value | target |\n|---|---|---|")
for name, value, target in rows:
    print(f"| {name} | {value} | {target} |")
EOF
echo "total $(( $(date +%s) - START )) s"
