#!/usr/bin/env bash
# Install bertx with its test extras and run the whole test suite.
# torch is pinned and installed first: the CPU wheel (2.13.0) is found locally, whereas letting a bare
# `torch` requirement resolve on its own would download a multi-GB CUDA build.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[test]"
export HF_HUB_OFFLINE=1
python -m pytest -q "$@"
