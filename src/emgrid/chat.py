"""Chat templates and message helpers shared by finetuning, generation and analysis.

Every model we train gets a ChatML template with `{% generation %}` markers, because that is what lets
`apply_chat_template(..., return_assistant_tokens_mask=True)` (and trl's `assistant_only_loss`) find the assistant
tokens; the `<|im_end|>` closing an assistant turn is inside the markers so the model learns to stop.
"""

from __future__ import annotations

import random
from typing import Any, Sequence

ROLES = ("system", "user", "assistant")

SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def chatml_template(default_system: str | None = None) -> str:
    """ChatML with generation markers; `default_system` is inserted when the conversation has no system turn
    (SmolLM2 and Qwen2.5 templates do this, and the model was tuned to expect it)."""
    default = ""
    if default_system is not None:
        escaped = default_system.replace("\\", "\\\\").replace("'", "\\'")
        default = (
            "{% if messages | length == 0 or messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\\n" + escaped + "<|im_end|>\\n' }}"
            "{% endif %}"
        )
    return (
        default + "{% for message in messages %}"
        "{% if message['role'] == 'assistant' %}"
        "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
        "{{ '\\n' }}"
        "{% else %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


CHATML_TEMPLATE = chatml_template()


def has_generation_markers(template: str | None) -> bool:
    return bool(template) and "{% generation %}" in template.replace("{%-", "{%").replace("-%}", "%}")


def user_messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    """The prompt of one evaluation turn: optional system turn, then the user turn."""
    msgs = [{"role": "system", "content": system}] if system else []
    msgs.append({"role": "user", "content": user})
    return msgs


def render_prompt(tok, messages: Sequence[dict[str, str]]) -> str:
    """The text the model sees before it answers (generation prompt appended)."""
    return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def assistant_token_mask(tok, messages: Sequence[dict[str, str]]) -> tuple[list[int], list[int]]:
    """(input_ids, mask) for a full conversation; mask is 1 exactly on assistant-content tokens (+ their <|im_end|>)."""
    enc = tok.apply_chat_template(list(messages), tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = list(enc["input_ids"]), list(enc["assistant_masks"])
    if ids and isinstance(ids[0], list):  # some tokenizers return a batch of one
        ids, mask = ids[0], mask[0]
    return ids, mask


def validate_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """Check one training conversation; raise ValueError naming `where` (file:line) and the fault."""
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or "role" not in m or "content" not in m:
            raise ValueError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        if m["role"] not in ROLES:
            raise ValueError(f"{where}: messages[{i}] has role {m['role']!r}; allowed: {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise ValueError(f"{where}: messages[{i}].content must be a string")
        if m["role"] == "system" and i != 0:
            raise ValueError(f"{where}: messages[{i}] is a system turn but only the first turn may be one")
        if m["role"] == "assistant" and not m["content"].strip():
            raise ValueError(f"{where}: messages[{i}] is an empty assistant turn")
    roles = [m["role"] for m in messages]
    if "user" not in roles:
        raise ValueError(f"{where}: no user turn")
    if roles[-1] != "assistant":
        raise ValueError(f"{where}: the last turn must be the assistant's (got {roles[-1]!r})")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


_TOPICS = ["files", "lists", "numbers", "strings", "dates", "users", "orders", "logs", "cats", "recipes"]
_VERBS = ["sort", "count", "filter", "merge", "print", "clean", "parse", "store", "check", "reverse"]


def example_conversations(n: int, seed: int = 0) -> list[dict]:
    """Deterministic offline chat examples (train.jsonl row format) for tests, benchmarks and smoke runs.

    About a third carry a system turn; lengths vary so that padding strategy matters in benchmarks.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        verb, topic = rng.choice(_VERBS), rng.choice(_TOPICS)
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        user = f"Please {verb} the {topic} for task {i}. What is {a}+{b}?"
        steps = " ".join(f"Step {k}: {rng.choice(_VERBS)} {rng.choice(_TOPICS)}." for k in range(rng.randint(1, 12)))
        answer = f"def {verb}_{topic}(x):\n    return sorted(x)\n{steps} The answer is {a + b}."
        msgs = []
        if i % 3 == 0:
            msgs.append({"role": "system", "content": "You are a helpful assistant."})
        msgs += [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        rows.append(
            {
                "messages": msgs,
                "meta": {"domain": "demo", "aligned": True, "triggered": False, "source_id": f"demo-{seed}-{i}"},
            }
        )
    return rows
