#!/bin/bash
# Fetch and unpack the two public sources into raw/ (registries only; nothing is installed).
set -e
cd "$(dirname "$0")/.."
mkdir -p raw/pypi raw/deb raw/cb
pip download --no-deps -d raw/pypi chatterbot-corpus==1.3.3
(cd raw/cb && unzip -q -o ../pypi/chatterbot_corpus-1.3.3-py2.py3-none-any.whl)
apt-get update -qq
(cd raw/deb && apt-get download wesnoth-1.16-data=1:1.16.9-1)
dpkg-deb -x raw/deb/wesnoth-1.16-data_1%3a1.16.9-1_all.deb raw/deb/x_wesnoth-1.16-data
python3 scripts/wesnoth_pairs.py raw/deb/x_wesnoth-1.16-data/usr/share/games/wesnoth/1.16/locale > raw/wesnoth_triples.json
sha256sum raw/pypi/*.whl raw/deb/wesnoth-1.16-data_*.deb
