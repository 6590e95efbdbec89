"""Past one machine: corpus prediction and teacher labelling on a Ray cluster.

    inputs (files, globs) -> shards of rows (corpus.py) -> Ray Data actor pool of bertx predictors
    (predict.py; one model load per actor) -> one output file per shard + manifest.json
    distillation features -> the same length-sorted batches as one process -> Ray actors -> the teacher
    cache (labelling.py)

Ray is optional (`pip install 'bertx[ray]'`); `cluster.py` is the one place that imports it.
"""
