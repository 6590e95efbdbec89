"""A trained folder made into a runtime folder, checked against PyTorch before it is written.

one_model.py   one model to ONNX or OpenVINO, fp32 or int8, gated on the task metric
multitask.py   every head of a multi-task run in one graph
tracing.py     the trace (inputs, outputs, dynamic axes) both share
quantize.py    dynamic int8 and the choice of which layers keep fp32
parity.py      samples and the checks of the export's outputs and decisions against PyTorch
merge.py       LoRA adapters merged into their base, a plain folder again
bank_graph.py  a folder of LoRA adapters as one ONNX graph that takes the adapter as an input
"""
