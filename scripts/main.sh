#!/usr/bin/env bash
# Install bertx and run the main job: fine-tune the packaged all-MiniLM-L6-v2 on SST-2
# (../shared/data/sst2 by default; BERTX_DATA_DIR or data.data_dir=... to move it), then print dev
# accuracy and a few example predictions. Extra arguments are passed to `bertx finetune`.
set -euo pipefail
export PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -e .
export HF_HUB_OFFLINE=1
bertx finetune configs/sst2.yaml --overwrite "$@"
