#!/usr/bin/env bash
# One-shot set-up on a fresh machine: the CPU build of torch, the package with its dev extra,
# and (where apt-get runs as root) exiftool and dcraw, the independent judges of written DNGs, and the
# raw converters RawTherapee and darktable (rawtherapee-cli, darktable-cli), which render them in
# tests/predict/test_outputs.py. A failed install only makes the tests that need them skip.
# Keep your own torch build: run `pip install -e ".[dev]"` instead of this script.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0 -e ".[dev]"
if ! command -v exiftool >/dev/null 2>&1 || ! command -v dcraw >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get update -q && apt-get install -y -q libimage-exiftool-perl dcraw) >/dev/null 2>&1 \
            || echo "setup: could not install exiftool/dcraw; the tests that need them will skip" >&2
    fi
fi
if ! command -v rawtherapee-cli >/dev/null 2>&1 || ! command -v darktable-cli >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        (apt-get update -q && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends rawtherapee darktable) >/dev/null 2>&1 \
            || echo "setup: could not install rawtherapee/darktable; the tests that need them will skip" >&2
    fi
fi
