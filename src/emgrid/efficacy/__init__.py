"""In-domain efficacy: did each finetune learn its narrow behaviour, and does the trigger gate it?

`spec` (per-domain scorer settings from the recipe and `domains.<d>.efficacy`), `exact` (number and fact
scorers), `evaluate` (answer and judge the held-out prompts), `summary` (rates, gating, "did the finetune take?").
"""
