"""Data flow, first stage: files -> rows -> examples -> token features -> padded batches."""
