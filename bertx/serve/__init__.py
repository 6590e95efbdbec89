"""`bertx serve`: trained folders behind an HTTP API, micro-batched.

protocol.py        the leaf every served kind stands on: limits, `BadRequest`, input checks, warm-up, `Served`
single.py          one trained folder (PyTorch or an export)
multitask.py       a multi-task folder: every head in one pass, `tasks` picks the heads
adapter_bank.py    a folder of LoRA adapters of one base, batches mixing adapters (shared_adapters.py: adapters
                   named one by one that share a base load it once)
batcher.py         micro-batching, admission by expected answer time, a failed batch retried request by request
app.py             the routes over one state object; metrics.py: the Prometheus counters
main.py            arguments, loading each folder as its kind, binding, uvicorn
"""
