#!/usr/bin/env bash
# The environment benchmarks/deploy/openvino_rows.py runs in: optimum-intel pins another transformers than bertx's,
# so it gets its own. Then: python -m benchmarks.deploy.predict_speed --openvino-python ENV/bin/python
# (huggingface-hub is pinned below 2 for transformers 5.5; optimum-intel 2.2 asks below 1.22 but runs with it).
set -euo pipefail
ENV=${1:-.venv-openvino}
python -m venv "$ENV"
"$ENV/bin/pip" install -q torch==2.13.0
"$ENV/bin/pip" install -q "optimum-intel[openvino]" datasets "huggingface-hub>=1.5,<2"
echo "$ENV/bin/python"
