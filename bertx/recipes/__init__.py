"""Recipes: one training strategy per module, each an explicit loop (finetune; more to come)."""
