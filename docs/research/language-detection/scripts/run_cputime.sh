#!/bin/bash
# Contention-robust cross-check of speed: CPU time (user+sys from /usr/bin/time) of 20 detection passes
# over labelled.tsv minus that of 0 passes (startup, file read, detector build), per message.
cd "$(dirname "$0")/.."
B=target/release/langbench
N=$(wc -l < labelled.tsv)
echo "| config | CPU µs/message (20 passes, best of 3) |"
echo "|---|---|"
for c in whatlang3 whatlang3+clean whatlang6 whatlang-all lingua3 lingua3+clean lingua6 lingua6+clean lingua3-low lingua6-low; do
  best=""
  for i in 1 2 3; do
    t0=$( { /usr/bin/time -f "%U %S" $B "$c" labelled.tsv - 0 2>&1 >/dev/null; } | tail -1 | awk '{print $1+$2}')
    t1=$( { /usr/bin/time -f "%U %S" $B "$c" labelled.tsv - 20 2>&1 >/dev/null; } | tail -1 | awk '{print $1+$2}')
    v=$(python3 -c "print(f'{($t1-$t0)*1e6/(20*$N):.1f}')")
    best=$(python3 -c "b='$best'; print(min(float(b), $v) if b else $v)")
  done
  echo "| $c | $best |"
done
