"""Deploying a trained model: ONNX export with a parity check (export.py, parity.py), and the HTTP
server with dynamic micro-batching (server.py, batcher.py, server_metrics.py)."""
