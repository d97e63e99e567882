"""Assemble labelled.tsv / dev.tsv / heldout.tsv from the extracted public sources.

Deterministic: every random choice uses a fixed seed; the dev/held-apart split is by SHA-256 of the text.
Inputs (see SOURCES.md for how they were fetched):
  raw/cb/chatterbot_corpus/data/{english,french,spanish}/*.yml   (PyPI chatterbot-corpus 1.3.3, BSD-3-Clause)
  raw/wesnoth_triples.json  (scripts/wesnoth_pairs.py over Debian wesnoth-1.16-data 1:1.16.9-1 .mo files, GPL-2+)
"""
import glob, hashlib, json, random, re, sys, unicodedata
import yaml

PER_SOURCE = 115          # messages per language per source (French chatterbot is the limiting pool)
AUG_SHARE = 0.40          # share of messages decorated with @handles / URLs / emoji / hashtags
LANGS = {"en": "english", "fr": "french", "es": "spanish"}

def norm(s):
    return re.sub(r"\s+", " ", s).strip()

def key(s):
    s = unicodedata.normalize("NFKD", s.lower())
    s = "".join(c for c in s if not unicodedata.combining(c))
    return re.sub(r"[^\w]+", " ", s).strip()

def ok_text(s):
    if not (10 <= len(s) <= 280):
        return False
    words = re.findall(r"[^\W\d_]+", s)
    if len(words) < 2:
        return False
    # all-capitalised short strings are mostly names/titles ("Matt Groening"), not language
    if len(words) <= 3 and all(w[0].isupper() for w in words):
        return False
    if re.search(r"[<>{}\[\]$%|=_]|https?:", s):   # markup, placeholders, code
        return False
    return True

# --- chatterbot-corpus: dialogue lines -----------------------------------------------------
cb = {}
for code, d in LANGS.items():
    lines = []
    for f in sorted(glob.glob(f"raw/cb/chatterbot_corpus/data/{d}/*.yml")):
        y = yaml.safe_load(open(f, encoding="utf-8"))
        for conv in y.get("conversations", []) or []:
            for s in conv:
                if isinstance(s, str):
                    s = norm(s)
                    if ok_text(s):
                        lines.append((s, "chatterbot-corpus:" + f.split("/")[-1]))
    seen, uniq = set(), []
    for s, src in lines:
        if key(s) not in seen:
            seen.add(key(s)); uniq.append((s, src))
    cb[code] = uniq

# --- Wesnoth: sentence-like translated messages; each triple is used for ONE language only --
CTX = re.compile(r"^[\w ]+\^")
tri = json.load(open("raw/wesnoth_triples.json", encoding="utf-8"))
DOMAINS = {"wesnoth-tutorial", "wesnoth", "wesnoth-lib", "wesnoth-multiplayer", "wesnoth-editor", "wesnoth-help"}
cands = []
for t in tri:
    if t["domain"] not in DOMAINS:
        continue
    row = {l: norm(CTX.sub("", t[l])) for l in ("en", "fr", "es")}
    if not all(ok_text(v) for v in row.values()):
        continue
    if any(len(re.findall(r"[^\W\d_]+", v)) < 4 for v in row.values()):
        continue   # keep sentences, not menu labels
    if "\n" in t["en"]:
        continue
    if re.match(r"^\d+p\s*[—-]", row["en"]):
        continue   # multiplayer map titles ("2p — Den of Onis"): names, not language
    row["domain"] = t["domain"]
    cands.append(row)
cands.sort(key=lambda r: r["en"])
random.Random(17).shuffle(cands)
wes = {l: [] for l in LANGS}
for i, r in enumerate(cands):
    l = ("en", "fr", "es")[i % 3]
    wes[l].append((r[l], "wesnoth-1.16:" + r["domain"]))

# --- take PER_SOURCE from each source and language -----------------------------------------
rows = []
for l in LANGS:
    for pool in (cb[l], wes[l]):
        pool = sorted(pool)
        random.Random("take-" + l + str(len(pool))).shuffle(pool)
        rows += [(l, s, src) for s, src in pool[:PER_SOURCE]]

# drop anything whose normalised text occurs under two languages, then dedupe
labels = {}
for l, s, _ in rows:
    labels.setdefault(key(s), set()).add(l)
seen, clean = set(), []
for l, s, src in rows:
    k = key(s)
    if len(labels[k]) > 1 or k in seen:
        continue
    seen.add(k); clean.append((l, s, src))

# manual exclusions after reading every message (not really in the labelled language / not language)
EXCLUDE = set(l.rstrip("\n") for l in open("scripts/exclude.txt", encoding="utf-8") if l.strip() and not l.startswith("#"))
clean = [r for r in clean if r[1] not in EXCLUDE]

# --- social-media decoration (deterministic; language-neutral tokens) ----------------------
HANDLES = ["@AcmeSupport", "@acme_help", "@mlopez87", "@jb_1990", "@K_Martin", "@nora.dev", "@Zed42"]
TAGS = ["#AcmeAir", "#NX4021", "#Acme", "#ticket2291", "#AcmeBank"]
URLS = ["https://t.co/aB3dE9xQ", "https://acme.example/o/88231", "https://bsky.app/profile/acme.example", "https://mstdn.example/@acme/1122"]
EMOJI = ["😡", "🙏", "👍", "😂", "🤔", "❤️", "😭", "🔥", "✈️", "📦"]
out = []
for l, s, src in clean:
    h = int(hashlib.sha256(("aug" + s).encode()).hexdigest(), 16)
    rnd = random.Random(h)
    aug = []
    if rnd.random() < AUG_SHARE:
        t = s
        kinds = rnd.sample(["handle", "tag", "url", "emoji"], rnd.choice([1, 1, 2, 3]))
        if "handle" in kinds:
            t = rnd.choice(HANDLES) + " " + t
        if "emoji" in kinds:
            t = t + " " + rnd.choice(EMOJI) * rnd.choice([1, 1, 2, 3])
        if "tag" in kinds:
            t = t + " " + rnd.choice(TAGS)
        if "url" in kinds:
            t = t + " " + rnd.choice(URLS)
        if len(t) <= 280:
            s, aug = t, sorted(kinds)
    out.append((l, s, src, ",".join(aug) or "-"))

out.sort(key=lambda r: hashlib.sha256(r[1].encode()).hexdigest())
def half(s):   # held-apart if the first byte of SHA-256(text) is odd
    return "heldout" if hashlib.sha256(s.encode()).digest()[0] % 2 else "dev"
with open("labelled.tsv", "w", encoding="utf-8") as f, open("dev.tsv", "w", encoding="utf-8") as fd, \
     open("heldout.tsv", "w", encoding="utf-8") as fh, open("labelled-meta.tsv", "w", encoding="utf-8") as fm:
    fm.write("lang\tsplit\tsource\tdecoration\ttext\n")
    for l, s, src, aug in out:
        assert "\t" not in s and "\n" not in s
        f.write(f"{l}\t{s}\n")
        (fh if half(s) == "heldout" else fd).write(f"{l}\t{s}\n")
        fm.write(f"{l}\t{half(s)}\t{src}\t{aug}\t{s}\n")

import collections
c = collections.Counter((l, src.split(":")[0]) for l, _, src, _ in out)
print("total", len(out), dict(c), file=sys.stderr)
print("split", collections.Counter(half(s) for _, s, _, _ in out), file=sys.stderr)
print("under40", sum(len(s) < 40 for _, s, _, _ in out), "decorated", sum(a != "-" for *_, a in out), file=sys.stderr)
