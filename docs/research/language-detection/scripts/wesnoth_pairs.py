"""Extract (en, fr, es) triples from Wesnoth 1.16 .mo catalogues (Debian wesnoth-1.16-data)."""
import gettext, re, sys, json
base = sys.argv[1]
out = []
for dom in ["wesnoth-tutorial", "wesnoth-lib", "wesnoth", "wesnoth-multiplayer", "wesnoth-help", "wesnoth-anl", "wesnoth-editor", "wesnoth-units", "wesnoth-wc"]:
    cats = {}
    for l in ["fr", "es"]:
        with open(f"{base}/{l}/LC_MESSAGES/{dom}.mo", "rb") as f:
            cats[l] = gettext.GNUTranslations(f)._catalog
    for k, fr in cats["fr"].items():
        if not isinstance(k, str) or not k:
            continue
        es = cats["es"].get(k)
        if not es or not fr or es == k or fr == k:
            continue
        out.append({"domain": dom, "en": k, "fr": fr, "es": es})
json.dump(out, sys.stdout, ensure_ascii=False)
