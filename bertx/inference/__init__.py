"""Inference: load any trained folder (HF, adapter, student, few-shot, ONNX export) and the predictors shared by
the Python API, the CLI and the server (`serve/app.py`)."""
