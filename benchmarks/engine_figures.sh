#!/bin/bash
# Long engine measurements, beyond benchmarks/report.sh: three quick benches (ranges), the large
# prior for comparison, bigger steps, then play 20 s (and 5 x 60 s: idle underruns), the callbacks
# under --gil-load (120 s each) and a 10-minute --hog soak on a JACK dummy device at 48 kHz / 256;
# then how late this machine wakes a sleeping thread; last, the click of an underrun and of a stop
# (declick), a step's cost after idling, and the app's own knob latency and GUI CPU.
# Run on an idle machine with no other jackd up. Figures land in $OUT (default runs/engine_figures).
cd "$(dirname "$0")/.."
M=${MELSYNTH:-.venv/bin/melsynth}
O=${OUT:-runs/engine_figures}
mkdir -p $O
uptime > $O/engine_load.txt
for i in 1 2 3; do $M bench --json > $O/bench_quick$i.json 2> $O/bench_quick$i.err; uptime >> $O/engine_load.txt; done
for k in 2 4; do $M bench --json --frames-per-step $k > $O/bench_fps$k.json 2> $O/bench_fps$k.err; done
uptime >> $O/engine_load.txt
jackd --no-realtime -d dummy -r 48000 -p 256 > $O/jackd.log 2>&1 &
JP=$!
jack_wait -w -t 10
$M play --seconds 20 --json --hostapi JACK > $O/play.json 2> $O/play.err
for i in 1 2 3 4 5; do $M play --seconds 60 --json --hostapi JACK > $O/play60_$i.json 2> $O/play60_$i.err; done
uptime >> $O/engine_load.txt
for cb in native python; do
  flag=""; [ $cb = python ] && flag=--python-callback
  $M bench --json --soak 120 --gil-load --hostapi JACK $flag > $O/bench_gil_$cb.json 2> $O/bench_gil_$cb.err
done
$M bench --json --soak ${SOAK:-600} --hog --hostapi JACK > $O/bench_soak.json 2> $O/bench_soak.err
uptime >> $O/engine_load.txt
kill $JP
.venv/bin/python benchmarks/wake_probe.py --hog > $O/wake_probe_hog.jsonl
.venv/bin/python benchmarks/wake_probe.py --policy nice fifo --seconds 30 > $O/wake_probe_idle.jsonl
.venv/bin/python benchmarks/declick.py > $O/declick.json
.venv/bin/python benchmarks/cold_step.py > $O/cold_step.txt 2> $O/cold_step.err
QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/app_latency.py > $O/app_latency.json 2> $O/app_latency.err
echo done > $O/engine.done
