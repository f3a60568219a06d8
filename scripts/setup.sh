#!/usr/bin/env bash
# One-step setup: system tools (ffmpeg required, espeak-ng optional), a virtual environment,
# and the pinned Python stack from requirements.lock. Safe to rerun; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

need_apt=()
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || need_apt+=(ffmpeg)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
if [ ${#need_apt[@]} -gt 0 ]; then
    sudo_cmd=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_cmd="sudo"; fi
    fi
    if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo_cmd" ]; }; then
        echo "setup: installing system packages: ${need_apt[*]}"
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    else
        echo "setup: missing system packages: ${need_apt[*]}" >&2
        echo "setup: install them with your package manager (e.g. 'apt-get install ${need_apt[*]}')." >&2
    fi
fi
if ! command -v ffmpeg >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
    echo "setup: ffmpeg and ffprobe are required and could not be installed; install ffmpeg and rerun." >&2
    exit 1
fi
command -v espeak-ng >/dev/null 2>&1 || echo "setup: espeak-ng not found; extra synthetic voices are disabled." >&2

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtual environment in $VENV"
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade "pip>=24" >/dev/null
# setuptools >= 77 reads pyproject's SPDX `license` string; the editable install below uses the venv's.
"$VENV/bin/python" -m pip install -q "setuptools>=77"
# torch first and exactly: anything that lets pip choose torch pulls a multi-GB CUDA build.
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -r requirements.lock
# Quiet: setuptools warns on every editable install that top-level folders named like packages
# (curation/, mixing/, ...) may shadow them; that layout is the project's, on purpose.
PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
"$VENV/bin/python" -c "import avforge, curation, mixing, training, manifests" 
echo "setup: ok ($("$VENV/bin/python" --version), $(ffmpeg -version | head -n1 | cut -d' ' -f1-3))"
