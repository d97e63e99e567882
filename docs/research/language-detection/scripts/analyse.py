"""Accuracy tables from preds/<config>-<split>.tsv (written by the langbench binary)."""
import csv, json, sys
BASE = ["whatlang3", "whatlang6", "whatlang-all", "lingua3", "lingua6", "lingua3-low", "lingua6-low",
        "lingua3@0.1", "lingua3@0.2", "lingua6@0.1", "lingua6@0.2"]
CONFIGS = [c + v for c in BASE for v in ("", "+clean")]
LANGS = ["en", "fr", "es"]

def load(config, split):
    texts = [l.rstrip("\n").split("\t", 1)[1] for l in open(f"{split}.tsv", encoding="utf-8") if l.strip()]
    rows = list(csv.DictReader(open(f"preds/{config}-{split}.tsv", encoding="utf-8"), delimiter="\t"))
    for r, t in zip(rows, texts):
        r["len"] = len(t)
        r["conf1"] = float(r["conf1"]); r["conf2"] = float(r["conf2"])
        r["reliable"] = r["reliable"] == "true"
    return rows

def acc(rows):
    return (sum(r["gold"] == r["pred"] for r in rows) / len(rows)) if rows else float("nan")

def sure(config, r, thr):
    """thr: for whatlang, 'reliable' (is_reliable()) or a float on confidence(); for lingua, a float on the
    top confidence value (the chosen language's share of the confidence distribution)."""
    if r["pred"] == "none":
        return False
    if thr == "reliable":
        return r["reliable"]
    return r["conf1"] >= thr

THRS = {"whatlang": ["reliable", 0.0, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5],
        "lingua": [0.0, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
        "mrd": [0.0]}   # with a minimum relative distance, "unsure" = detect_language_of() returned None

def summary(config, rows):
    out = {"n": len(rows), "acc": acc(rows)}
    for l in LANGS:
        out["acc_" + l] = acc([r for r in rows if r["gold"] == l])
    short = [r for r in rows if r["len"] < 40]
    out["n_short"] = len(short); out["acc_short"] = acc(short)
    out["none"] = sum(r["pred"] == "none" for r in rows)
    fam = "whatlang" if config.startswith("whatlang") else ("mrd" if "@" in config else "lingua")
    out["thr"] = {}
    for t in THRS[fam]:
        s = [r for r in rows if sure(config, r, t)]
        out["thr"][str(t)] = {"unsure": 1 - len(s) / len(rows), "acc_sure": acc(s),
                              "wrong_sure": sum(r["gold"] != r["pred"] for r in s),
                              "unsure_short": 1 - sum(sure(config, r, t) for r in short) / len(short)}
    # confusions
    conf = {}
    for r in rows:
        if r["gold"] != r["pred"]:
            k = f'{r["gold"]}->{r["pred"]}'; conf[k] = conf.get(k, 0) + 1
    out["confusions"] = dict(sorted(conf.items(), key=lambda kv: -kv[1]))
    return out

res = {}
for c in CONFIGS:
    d, h = load(c, "dev"), load(c, "heldout")
    res[c] = {"dev": summary(c, d), "heldout": summary(c, h), "all": summary(c, d + h)}
json.dump(res, open("results/accuracy.json", "w"), indent=1)

def pct(x): return f"{100*x:.1f}%"
for split in ["heldout", "dev", "all"]:
    print(f"\n## {split}")
    print("| config | n | acc | en | fr | es | <40 chars (n) | no answer |")
    print("|---|---|---|---|---|---|---|---|")
    for c in CONFIGS:
        s = res[c][split]
        print(f"| {c} | {s['n']} | {pct(s['acc'])} | {pct(s['acc_en'])} | {pct(s['acc_fr'])} | {pct(s['acc_es'])} | {pct(s['acc_short'])} ({s['n_short']}) | {s['none']} |")
    print("\n| config | threshold | unsure | unsure <40 | acc when sure | wrong when sure |")
    print("|---|---|---|---|---|---|")
    for c in CONFIGS:
        for t, v in res[c][split]["thr"].items():
            print(f"| {c} | {t} | {pct(v['unsure'])} | {pct(v['unsure_short'])} | {pct(v['acc_sure'])} | {v['wrong_sure']} |")
    for c in CONFIGS:
        print(f"{c} confusions: {res[c][split]['confusions']}")
