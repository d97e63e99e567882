#!/usr/bin/env python3
"""The `rules replay` benchmark (see BENCHMARKS.md).

Usage: bench/replay.py [MESSAGES] [RULES] [ROUNDS]

Generates, from fixed seeds, a mixed French/English corpus (accents, emoji,
typographic apostrophes; one message in five plain ASCII) and two rule sets
of RULES rules that differ in one rule in twenty; writes the corpus as a
JSON-lines file and into a SQLite database; then times, alternating in one
run, the release binary's
  baseline:  helpdesk rules test --json - --rules OLD  < corpus   (one rule set)
  file:      helpdesk rules replay --json --rules NEW --against OLD --input corpus
  file, one thread: the same with --threads 1
  sqlite:    helpdesk rules replay --json --rules NEW --config helpdesk.toml
and prints messages per second and the ratio of each to the baseline.
"""

import json
import os
import platform
import random
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYLLABLES = ["ba", "ré", "to", "çi", "lu", "mè", "na", "pô", "ki", "sü", "de", "fa", "gé",
             "ho", "jï", "la", "mo", "nu", "pe", "ri", "sa", "tu", "vé", "xa", "zo", "ên",
             "qua", "tion", "ste", "wor"]
WORDS = ["bonjour", "merci", "problème", "facture", "remboursement", "connexion", "réseau",
         "hello", "please", "refund", "password", "internet", "since", "yesterday", "encore",
         "depuis", "très", "déçu", "where", "order", "commande", "livraison", "était", "où"]
EMOJI = ["😡", "🙏", "👍", "🔥", "😭", "🤔", "✨", "📦"]
APOS = ["l’", "d’", "j’", "qu’", "c’"]


def vocabulary(rng, n):
    seen = set()
    out = []
    while len(out) < n:
        w = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4)))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def rules_toml(vocab, n, changed):
    parts = []
    for i in range(n):
        kws = vocab[3 * i: 3 * i + 3]
        if changed and i % 20 == 0:
            kws = [vocab[3 * n + i]] + kws[1:]
        escalate = (i % 3 == 0) != (changed and i % 20 == 10)
        action = ('escalate = { queue = "tech", priority = "low", ack = "Bonjour {author}, dossier {ticket}" }'
                  if escalate else f'reply = "Bonjour {{author}}, voir https://aide.example/{i}"')
        kw = ", ".join(json.dumps(k, ensure_ascii=False) for k in kws)
        parts.append(f'[[rule]]\nid = "r{i}"\nkeywords = [{kw}]\npriority = {i % 7}\n{action}\n')
    return "\n".join(parts)


def message(rng, vocab):
    words = []
    for _ in range(rng.randint(8, 30)):
        r = rng.random()
        if r < 0.04:
            words.append(rng.choice(vocab))
        elif r < 0.10:
            words.append(rng.choice(EMOJI))
        elif r < 0.16:
            words.append(rng.choice(APOS) + rng.choice(WORDS))
        else:
            words.append(rng.choice(WORDS))
    return " ".join(words)[:280]


def ascii_only(text):
    table = str.maketrans("éèêçôüïàù’", "eeecouiau'")
    return "".join(c for c in text.translate(table) if ord(c) < 128)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    rules = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    rng = random.Random(16)
    vocab = vocabulary(rng, 4 * rules + 50)
    work = tempfile.mkdtemp(prefix="replay-bench-")
    for name, changed in (("old", False), ("new", True)):
        os.makedirs(f"{work}/{name}")
        with open(f"{work}/{name}/rules.toml", "w") as f:
            f.write(rules_toml(vocab, rules, changed))
    channels = ["mention", "dm", "search"]
    rows = []
    now_ms = int(time.time() * 1000)
    with open(f"{work}/corpus.jsonl", "w") as f:
        for i in range(n):
            text = message(rng, vocab)
            if i % 5 == 0:
                text = ascii_only(text)
            ch = channels[i % 3]
            rows.append((str(i), ch, text, now_ms - (i % 30) * 86_400_000))
            f.write(json.dumps({"id": str(i), "text": text, "channel": ch}, ensure_ascii=False) + "\n")
    target = os.environ.get("CARGO_TARGET_DIR", f"{ROOT}/target")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    exe = f"{target}/release/helpdesk"
    db = f"{work}/bench.db"
    with open(f"{work}/helpdesk.toml", "w") as f:
        f.write(f'database_url = "sqlite://{db}"\nrules = "{work}/old"\n\n[x]\naccess_token_env = "NO_TOKEN"\n')
    # Creates and migrates the database as the bot would (`report` opens it
    # so; a replay reads a database as it is and creates none).
    subprocess.run([exe, "report", "--config", f"{work}/helpdesk.toml"],
                   check=True, stdout=subprocess.DEVNULL)
    con = sqlite3.connect(db)
    con.executemany(
        "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, author_id, "
        "author_handle, author_name, text, written_at, received_at, action) "
        "VALUES ('x', ?, ?, ?, 'a', 'h', 'n', ?, ?, ?, 'none')",
        [(i, ch, i, t, w, w) for (i, ch, t, w) in rows])
    con.commit()
    con.close()
    runs = {
        "baseline: rules test --json - (one rule set)":
            ([exe, "rules", "test", "--json", "-", "--rules", f"{work}/old"], True),
        "rules replay --json --input (two rule sets)":
            ([exe, "rules", "replay", "--json", "--rules", f"{work}/new", "--against", f"{work}/old",
              "--input", f"{work}/corpus.jsonl"], False),
        "rules replay --json --input --threads 1":
            ([exe, "rules", "replay", "--json", "--rules", f"{work}/new", "--against", f"{work}/old",
              "--input", f"{work}/corpus.jsonl", "--threads", "1"], False),
        "rules replay --json from SQLite (two rule sets)":
            ([exe, "rules", "replay", "--json", "--rules", f"{work}/new", "--config", f"{work}/helpdesk.toml"],
             False),
    }
    best = {k: float("inf") for k in runs}
    for _ in range(rounds):
        for name, (cmd, stdin) in runs.items():
            with open(f"{work}/corpus.jsonl", "rb") as inp:
                start = time.perf_counter()
                p = subprocess.run(cmd, stdin=inp if stdin else subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL)
                elapsed = time.perf_counter() - start
            if p.returncode not in (0, 1):
                sys.exit(f"{name}: exit {p.returncode}")
            best[name] = min(best[name], elapsed)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}, {platform.system()}")
    print(f"corpus: {n} messages (1 in 5 ASCII-only, the rest with accents, emoji, typographic apostrophes), "
          f"{rules} rules per set, best of {rounds} alternating rounds")
    base = n / best[next(iter(runs))]
    for name, secs in best.items():
        rate = n / secs
        print(f"{name:50} {secs:7.3f} s  {rate / 1000:8.0f} k msg/s  {rate / base:5.2f}× baseline")


if __name__ == "__main__":
    main()
