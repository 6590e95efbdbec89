"""Models: locate and check encoders, attach task heads."""
