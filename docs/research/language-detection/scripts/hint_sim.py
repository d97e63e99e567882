"""What the platform's language tag adds when lingua3+clean is unsure (confidence < THR).
The labelled set has no real platform tags, so tags are SIMULATED: correct with probability p, otherwise
another of en/fr/es ("wrong tag", e.g. the account's UI language) or 'und' (no tag), seeded and deterministic."""
import csv, random, sys
config = sys.argv[1] if len(sys.argv) > 1 else "lingua3+clean"
split = sys.argv[2] if len(sys.argv) > 2 else "heldout"
THR = float(sys.argv[3]) if len(sys.argv) > 3 else 0.6
rows = list(csv.DictReader(open(f"preds/{config}-{split}.tsv", encoding="utf-8"), delimiter="\t"))
L = ["en", "fr", "es"]
def tag_for(gold, p, rnd):
    x = rnd.random()
    if x < p: return gold
    if x < p + (1 - p) / 2: return rnd.choice([l for l in L if l != gold])
    return "und"
print(f"| tag correct p | detector only (argmax) | detector; if unsure (conf < {THR}) the tag when it is en/fr/es | same, but only if the tag is the detector's 1st or 2nd choice | tag when en/fr/es, else detector |")
print("|---|---|---|---|---|")
for p in [1.0, 0.9, 0.8, 0.6]:
    res = [0, 0, 0, 0]
    for i, r in enumerate(rows):
        rnd = random.Random(f"{p}-{i}")
        tag = tag_for(r["gold"], p, rnd)
        pred, c = r["pred"], float(r["conf1"])
        sure = c >= THR
        a = pred
        b = pred if sure or tag not in L else tag
        top2 = {pred, r["pred2"]}
        c2 = pred if sure or tag not in L or tag not in top2 else tag
        d = tag if tag in L else pred
        for k, v in enumerate([a, b, c2, d]):
            res[k] += v == r["gold"]
    n = len(rows)
    third = "n/a (whatlang gives no 2nd choice)" if config.startswith("whatlang") else f"{100*res[2]/n:.1f}%"
    print(f"| {p} | {100*res[0]/n:.1f}% | {100*res[1]/n:.1f}% | {third} | {100*res[3]/n:.1f}% |")
