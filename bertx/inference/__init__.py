"""Inference: the Predictor shared by the Python API, the CLI and (later) the server."""
