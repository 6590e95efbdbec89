"""Recipes: one training strategy per module, each an explicit loop over the shared run lifecycle: finetune,
fewshot, pretrain, multitask (and selected_multitask), intermediate, transfer, distill; vocab (extend) and tune
(Optuna) drive them; sources and inputs hold what several recipes resolve alike; plan chains them all for one
target task within a budget (`bertx plan`)."""
