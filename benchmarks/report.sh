#!/usr/bin/env bash
# Writes docs/benchmarks.md: the current figures of the shipped bundles, and the machine they ran on.
#
#   bash benchmarks/report.sh [CORPUS] [--skip-vocoder-eval] [--skip-prior-eval]
#
# CORPUS is a built corpus (default: $MELSYNTH_CORPUS, else corpus/default); both evaluations score
# against its test split. The figures:
#   melsynth bench --json                      engine speed, knob latency, CPU (a few minutes)
#   melsynth eval vocoder (16 test clips)      every vocoder of models/default against Griffin-Lim
#                                              (the slow part)
#   melsynth eval prior (2,000 windows)        the prior of every bundle in models/ that has one
#   benchmarks/walk_settings.py                render statistics of models/default per walk setting
# Run it on an idle machine: most figures are speeds.
# Environment: MELSYNTH (the melsynth command), PYTHON, OUT (default docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=${MELSYNTH_CORPUS:-corpus/default}
skip_vocoder=0
skip_prior=0
for arg in "$@"; do
  case "$arg" in
    --skip-vocoder-eval) skip_vocoder=1 ;;
    --skip-prior-eval) skip_prior=1 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    -*) echo "report.sh: unknown option $arg" >&2; exit 2 ;;
    *) corpus=$arg ;;
  esac
done
M=${MELSYNTH:-.venv/bin/melsynth}
PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-docs/benchmarks.md}
if [ $((skip_vocoder * skip_prior)) -eq 0 ] && [ ! -f "$corpus/manifest.json" ]; then
  echo "report.sh: $corpus is not a built corpus (no manifest.json); give its folder, or skip the evaluations" >&2
  exit 2
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "$corpus" > "$work/corpus.txt"

"$PY" benchmarks/report_md.py machine > "$work/machine.json"
echo "report.sh: melsynth bench --json" >&2
"$M" bench --json > "$work/bench.json" 2> "$work/bench.log"
if [ $skip_vocoder -eq 0 ]; then
  echo "report.sh: melsynth eval vocoder on $corpus" >&2
  "$M" eval vocoder --bundle models/default --corpus "$corpus" --split test --max-clips 16 --seconds 30 \
    --json "$work/vocoder.json" > "$work/vocoder.log" 2>&1
fi
if [ $skip_prior -eq 0 ]; then
  for bundle in models/*/; do
    name=$(basename "$bundle")
    grep -q '"prior"' "$bundle/bundle.json" || continue
    echo "report.sh: melsynth eval prior --bundle models/$name on $corpus" >&2
    "$M" eval prior --bundle "models/$name" --corpus "$corpus" --json "$work/prior_$name.json" \
      > "$work/prior_$name.log" 2>&1
  done
fi
if [ $skip_prior -eq 0 ]; then
  echo "report.sh: benchmarks/walk_settings.py (render statistics per walk setting)" >&2
  "$PY" benchmarks/walk_settings.py --bundle models/default > "$work/walk.jsonl" 2> "$work/walk.log"
fi
"$PY" benchmarks/report_md.py markdown "$work" > "$work/benchmarks.md"
mkdir -p "$(dirname "$OUT")"
mv "$work/benchmarks.md" "$OUT"
echo "report.sh: wrote $OUT" >&2
