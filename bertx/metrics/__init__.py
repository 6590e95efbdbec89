"""Pure metric functions: numbers in, numbers out (no models, no files), checked against hand-computed values.

sequence.py  classification, regression and multi-label metrics
tagging.py   entity-level precision/recall/F1 (seqeval, strict) and word accuracy
squad.py     SQuAD exact match and F1 with the official answer normalisation
"""
