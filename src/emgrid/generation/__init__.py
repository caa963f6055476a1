"""Answer generation: every question x paraphrase x condition x sample of a cell, decoded by one of its backends
(hf: transformers `generate`; vllm; openai: chat completions for API models) into the same answer rows.
"""
