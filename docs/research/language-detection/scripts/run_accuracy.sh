#!/bin/bash
# Predictions for every configuration on dev.tsv and heldout.tsv (timing here is not used: runs=1).
set -e
cd "$(dirname "$0")/.."
B=target/release/langbench
mkdir -p preds; : > preds/run.log
for c in whatlang3 whatlang6 whatlang-all lingua3 lingua6 lingua3-low lingua6-low \
         lingua3@0.1 lingua3@0.2 lingua6@0.1 lingua6@0.2; do
  for v in "$c" "$c+clean"; do
    for s in dev heldout; do $B "$v" $s.tsv "preds/$v-$s.tsv" 1 2>>preds/run.log; done
  done
done
