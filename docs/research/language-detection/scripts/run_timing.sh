#!/bin/bash
# Speed and memory: each configuration runs 3 times as a separate process over the whole labelled.tsv
# (676 messages), each run timing one pass of detect (detect_lang / detect_language_of) after the detector
# is built; the report takes the best of the 3. Max RSS from /usr/bin/time -v of the whole process.
cd "$(dirname "$0")/.."
B=target/release/langbench
mkdir -p results; : > results/timing.raw
for c in whatlang3 whatlang3+clean whatlang6 whatlang-all lingua3 lingua3+clean lingua6 lingua6+clean lingua3-low lingua6-low; do
  for i in 1 2 3; do
    /usr/bin/time -v $B "$c" labelled.tsv - 1 2> /tmp/lb.err
    echo "$(grep '^config=' /tmp/lb.err) rss_kb=$(grep 'Maximum resident' /tmp/lb.err | awk '{print $NF}') wall=$(grep 'Elapsed (wall' /tmp/lb.err | awk '{print $NF}')" >> results/timing.raw
  done
done
python3 - <<'PY'
import re, collections
best = collections.OrderedDict()
for line in open("results/timing.raw"):
    d = dict(kv.split("=", 1) for kv in line.split())
    c = d["config"]; us = float(d["best_us_per_msg"]); rss = int(d["rss_kb"]); load = float(d["load_ms"])
    b = best.setdefault(c, {"us": [], "rss": [], "load": []})
    b["us"].append(us); b["rss"].append(rss); b["load"].append(load)
with open("results/timing.md", "w") as f:
    f.write("| config | µs/message (best of 3) | all 3 runs | detector build ms (best) | max RSS MiB (max of 3) |\n|---|---|---|---|---|\n")
    for c, b in best.items():
        f.write(f"| {c} | {min(b['us']):.1f} | {', '.join(f'{x:.1f}' for x in b['us'])} | {min(b['load']):.1f} | {max(b['rss'])/1024:.1f} |\n")
print(open("results/timing.md").read())
PY
