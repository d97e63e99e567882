"""The Python peer of `bench/rules_test.sh`: the same routing as
`helpdesk rules test --json -` on the same JSON lines, in a loop around
pyahocorasick (one automaton of every rule's normalised keyword).

Usage: python rules_test_peer.py KEYWORDS.tsv CORPUS.jsonl OUT.jsonl
Prints the seconds the routing loop took (reading each line's JSON,
normalising, matching with word boundaries, picking the best priority,
rendering the reply, writing the result's JSON); loading the corpus and
building the automaton are set-up, not counted.
"""
import json
import sys
import time
import unicodedata

import ahocorasick


def norm(text):
    """Lower case, accents dropped, typographic apostrophes plain."""
    text = text.lower()
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.replace("\u2019", "'")


def build(path):
    automaton = ahocorasick.Automaton()
    entries = {}
    for index, row in enumerate(open(path, encoding="utf-8")):
        rule, priority, keyword = row.rstrip("\n").split("\t")
        prefix = keyword.endswith("*")
        key = norm(keyword.rstrip("*"))
        entries.setdefault(key, []).append((int(priority), -index, rule, keyword, prefix, index))
    for key, rules in entries.items():
        automaton.add_word(key, (len(key), rules))
    automaton.make_automaton()
    return automaton


def route(automaton, text):
    n = norm(text)
    best = None
    for end, (length, rules) in automaton.iter(n):
        start = end - length + 1
        if start > 0 and n[start - 1].isalnum():
            continue
        after = end + 1 < len(n) and n[end + 1].isalnum()
        for entry in rules:
            if after and not entry[4]:
                continue
            if best is None or entry[:2] > best[:2]:
                best = entry
    return best


def main():
    automaton = build(sys.argv[1])
    lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
    out = []
    start = time.perf_counter()
    for line in lines:
        m = json.loads(line)
        best = route(automaton, m["text"])
        if best is None:
            result = {"action": "none", "keyword": None, "reply": None, "rule": None}
        else:
            reply = "Hello @customer, see https://help.example/%d" % best[5]
            result = {"action": "reply", "keyword": best[3], "reply": reply, "rule": best[2]}
        out.append(json.dumps(result, ensure_ascii=False))
    with open(sys.argv[3], "w", encoding="utf-8") as f:
        f.write("\n".join(out))
        f.write("\n")
    print("%.6f" % (time.perf_counter() - start))


if __name__ == "__main__":
    main()
