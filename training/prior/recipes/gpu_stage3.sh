#!/usr/bin/env bash
# Stage 3 of the shipped prior, on a lent GPU (the device tool runs this in a copy of the repo).
#
# Two runs share the GPU for MINUTES each: "cont" continues the stage-2 generator against a new
# critic (stage3_gpu_batch64.json, the shipped one), "scratch" is the default recipe from nothing
# at batch 64 (a comparison). Both train on a packed subset of the corpus, since only ~60 MiB
# travel to the device:
#
#   melsynth corpus pack corpus/default .gpu/prior/subset.npz --hours 1.65 --test-hours 0.06 --chunk-seconds 6
#   melsynth checkpoint compact runs/prior/stage2/best_generator.pt .gpu/prior/init_fp16.pt
#
# then, with .gpu/prior, this script and .whl (librosa and friends as wheels) carried:
#
#   bash training/prior/recipes/gpu_stage3.sh 7.5
#
# The validation figures it prints are against the subset's small test split (a higher floor than
# the full corpus's): score what comes back with `melsynth eval prior` on the full corpus. The
# critic comes back too (cont_checkpoint.part*): `melsynth checkpoint unpack RUN PARTS`
# gives a checkpoint.pt that `--resume` continues, since a fresh critic sets a trained generator back.
set -u
MIN=${1:-7.5}
DATA=${DATA:-.gpu/prior}
DEV=${DEV:-cuda}; PY=${PY:-python3}
export PYTHONUNBUFFERED=1
if ! $PY -c "import librosa, soundfile, soxr" 2>/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
  export PYTHONPATH=/tmp/site
fi
# the checkout's folders as the melsynth package, without installing it
mkdir -p /tmp/melsynth-root/melsynth
for d in engine app training cli; do ln -sfn "$(pwd)/$d" "/tmp/melsynth-root/melsynth/$d"; done
export PYTHONPATH=${PYTHONPATH:-}:/tmp/melsynth-root
OUTDIR=${OUT:-/tmp/out}; mkdir -p "$OUTDIR"
W=${WORK:-/tmp/prior_gpu}; rm -rf "$W"; mkdir -p "$W/runs"
$PY -c "from melsynth.training.prior.pack import unpack; unpack('$DATA/subset.npz', '$W/corpus')" || exit 4
LIM=$($PY -c "print(int($MIN * 60 + 90))")  # SIGTERM after that: the trainer checkpoints and stops
start() {  # name, extra args
  local name=$1; shift
  timeout -s TERM "$LIM" $PY -m melsynth.cli train prior --corpus "$W/corpus" --run "$W/runs/$name" \
    --device "$DEV" --minutes "$MIN" --threads 4 --no-progress "$@" > "$W/runs/$name.log" 2>&1 &
}
start cont --config training/prior/recipes/stage3_gpu_batch64.json --init "$DATA/init_fp16.pt"
p1=$!
start scratch --config training/prior/recipes/scratch_gpu_batch64.json
p2=$!
sleep 60
if ! kill -0 $p1 2>/dev/null && ! kill -0 $p2 2>/dev/null; then  # fail fast: device time is scarce
  echo "both runs ended within a minute"; tail -n 30 "$W"/runs/*.log; exit 5
fi
wait $p1; echo "cont rc=$?"; wait $p2; echo "scratch rc=$?"
tail -n 3 "$W"/runs/*.log
$PY - "$W/runs" "$OUTDIR" <<'P'
import sys
from pathlib import Path
from melsynth.training.prior.train import slim_checkpoint
runs, out = Path(sys.argv[1]), Path(sys.argv[2])
try:  # what comes back is capped at 8 files, 64 MiB: the shipped run's best and its whole state
    slim_checkpoint(runs / "cont", out / "cont_best.pt")                       # 13 MB
    from melsynth.training.portable import pack_checkpoint
    pack_checkpoint(runs / "cont", out / "cont_checkpoint")                   # 3 parts, 42 MB: --resume later
except Exception as exc:
    print(f"cont: {type(exc).__name__}: {exc}")
P
tar -C "$W/runs" -czf "$OUTDIR/logs.tgz" --exclude=checkpoint.pt --exclude=best_generator.pt \
  --exclude=prior_reference.npz --exclude=tb .
ls -la "$OUTDIR"
