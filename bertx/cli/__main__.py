"""`python -m bertx.cli ...` runs the `bertx` command (as torchrun and the tests do)."""

from bertx.cli import entry

entry()
