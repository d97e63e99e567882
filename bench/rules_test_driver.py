"""Runs `bench/rules_test.sh`'s measurements: the whole
`helpdesk rules test --json -` process against the Python peer, one after
the other, on each rule count and corpus variant, helpdesk on every core
(its default) and with `--threads 1`, and with BASELINE (a
`helpdesk` binary built from another commit) a third column measured in
the same rounds. Usage:
python rules_test_driver.py HELPDESK PYTHON WORKDIR ROUNDS MESSAGES [BASELINE]"""
import json
import statistics
import subprocess
import sys
import time

helpdesk, python, work, rounds, messages = sys.argv[1:6]
rounds, messages = int(rounds), int(messages)
baseline = sys.argv[6] if len(sys.argv) > 6 and sys.argv[6] else None
peer = __file__.replace("rules_test_driver.py", "rules_test_peer.py")


def run_helpdesk(rules, corpus, out, binary=None, extra=()):
    with open(corpus, "rb") as i, open(out, "wb") as o:
        start = time.perf_counter()
        code = subprocess.run([binary or helpdesk, "rules", "test", "--rules", rules, "--json", *extra, "-"], stdin=i, stdout=o).returncode
        secs = time.perf_counter() - start
    assert code == 0, "helpdesk exited %d" % code
    return secs


def run_peer(keywords, corpus, out):
    done = subprocess.run([python, peer, keywords, corpus, out], check=True, capture_output=True, text=True)
    return float(done.stdout.strip().splitlines()[-1])


def agreement(a, b):
    same = total = 0
    with open(a, encoding="utf-8") as fa, open(b, encoding="utf-8") as fb:
        for la, lb in zip(fa, fb):
            total += 1
            same += json.loads(la)["rule"] == json.loads(lb)["rule"]
    return same, total


extra = " baseline binary, msg/s (rounds) | helpdesk ÷ baseline |" if baseline else ""
print("| rules | corpus | helpdesk process, msg/s (rounds) | Python peer, msg/s (rounds) | best ÷ best | same rule | helpdesk --threads 1, msg/s (rounds) | --threads 1 ÷ Python |" + extra)
print("|---:|---|---|---|---:|---:|---|---:|" + ("---|---:|" if baseline else ""))
for size in (10, 1000, 10000):
    for variant in ("ascii", "accented"):
        rules = "%s/rules-%d" % (work, size)
        corpus = "%s/corpus-%d-%s.jsonl" % (work, size, variant)
        ours, theirs, base, single = [], [], [], []
        for r in range(rounds):
            # Alternate who goes first: the machine drifts minute to minute.
            order = [0, 1, 3, 2] if r % 2 == 0 else [2, 3, 1, 0]
            for who in order:
                if who == 3:
                    single.append(messages / run_helpdesk(rules, corpus, work + "/out-single.jsonl", extra=("--threads", "1")))
                elif who == 2:
                    if baseline:
                        base.append(messages / run_helpdesk(rules, corpus, work + "/out-baseline.jsonl", baseline))
                elif who == 0:
                    ours.append(messages / run_helpdesk(rules, corpus, work + "/out-helpdesk.jsonl"))
                else:
                    theirs.append(messages / run_peer(rules + "/keywords.tsv", corpus, work + "/out-peer.jsonl"))
        same, total = agreement(work + "/out-helpdesk.jsonl", work + "/out-peer.jsonl")
        fmt = lambda xs: " / ".join("%.0f k" % (x / 1000) for x in xs)
        identical = open(work + "/out-single.jsonl", "rb").read() == open(work + "/out-helpdesk.jsonl", "rb").read()
        assert identical, "the output of --threads 1 differs"
        row = "| %d | %s | %s | %s | %.1f× | %.2f %% | %s | %.1f× |" % (
            size, variant, fmt(ours), fmt(theirs), max(ours) / max(theirs), 100.0 * same / total,
            fmt(single), max(single) / max(theirs))
        if baseline:
            identical = open(work + "/out-baseline.jsonl", "rb").read() == open(work + "/out-helpdesk.jsonl", "rb").read()
            row += " %s | %.2f×%s |" % (fmt(base), max(ours) / max(base), "" if identical else " (OUTPUT DIFFERS)")
        print(row)
        sys.stdout.flush()
