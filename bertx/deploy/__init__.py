"""Deploying a trained model.

export:  export.py (ONNX or OpenVINO, fp32 or int8, gated on the task metric), tracing.py (the trace),
         quantize.py and parity.py (int8 and the checks against PyTorch), multitask_export.py (every head
         of a multi-task run in one graph), merge.py (adapters merged into their base)
serve:   server.py (routes, loading, binding), requests.py (input checks and warm-up every served kind
         shares), batcher.py (micro-batching and admission), server_metrics.py; the served kinds beside
         the single model: multitask_served.py, adapter_bank.py with bank_graph.py (a folder of LoRA
         adapters as one ONNX graph) and shared_adapters.py (adapters of one base loaded once)
"""
