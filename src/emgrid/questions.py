"""Evaluation questions in the EM YAML format (Betley et al. / the study's `eval/*.yaml`).

The format is a YAML list of items with `id`, `type`, `paraphrases`, `samples_per_paraphrase`, `judge`,
`judge_prompts` (metric -> `str.format` template with `{question}` and `{answer}`), and optional `system`,
`temperature`, `domain`. Only `type: free_form_judge_0_100` items are kept (others are counted and logged).
Ids are not unique in the study's files, so every item gets a `key` that is (`id`, or `id#k` for the k-th of a
repeated id, 1-based).
"""

from __future__ import annotations

import logging
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from emgrid.errors import QuestionFileError
from emgrid.yamlio import DuplicateKeyError, load_yaml

log = logging.getLogger(__name__)

JUDGED_TYPE = "free_form_judge_0_100"
TEMPLATE_FIELDS = frozenset({"question", "answer"})
_KNOWN = {
    "id",
    "type",
    "paraphrases",
    "samples_per_paraphrase",
    "judge",
    "judge_prompts",
    "system",
    "temperature",
    "domain",
}


@dataclass(frozen=True)
class Question:
    key: str
    id: str
    index: int  # position of the item in the file (0-based, counting skipped items too)
    paraphrases: list[str]
    samples_per_paraphrase: int | None
    judge: str | None
    judge_prompts: dict[str, str]
    system: str | None = None
    temperature: float | None = None
    domain: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def validate_template(template: Any, where: str) -> str:
    """A judge template must be a str.format template using only {question} and {answer}, and must use {answer}."""
    if not isinstance(template, str) or not template.strip():
        raise QuestionFileError(f"{where}: judge prompt must be a non-empty string")
    try:
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise QuestionFileError(
            f"{where}: judge prompt is not a valid format template ({e}); write literal braces as {{{{ and }}}}"
        ) from None
    unknown = sorted(n for n in names if n not in TEMPLATE_FIELDS)
    if unknown:
        raise QuestionFileError(
            f"{where}: judge prompt has unknown placeholder(s) {unknown}; "
            "only {question} and {answer} are filled in"
        )
    if "answer" not in names:
        raise QuestionFileError(f"{where}: judge prompt never shows the answer (no {{answer}} placeholder)")
    return template


#: The config keys that resolve null `judge_prompts` (named in the loader's error; `<name>` is the question set's key).
FALLBACK_KEYS = ("question_sets.<name>.fallback_judge_prompts", "question_sets.<name>.item_level_judge_prompts")


def _read_item_list(path: Path) -> list:
    """The YAML list of a question file, or an error naming the file (and the byte of a bad encoding)."""
    try:
        data = load_yaml(path)  # a repeated key (a second `paraphrases:`) must not silently replace the first
    except DuplicateKeyError as e:
        raise QuestionFileError(str(e)) from None
    except yaml.YAMLError as e:
        raise QuestionFileError(f"{path}: not valid YAML: {e}") from None
    except OSError as e:
        raise QuestionFileError(f"{path}: cannot read question file ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise QuestionFileError(
            f"{path}: not valid UTF-8 (byte 0x{e.object[e.start]:02x} at byte offset {e.start}; "
            "re-save the file as UTF-8)"
        ) from None
    if not isinstance(data, list):
        raise QuestionFileError(f"{path}: expected a YAML list of question items, got {type(data).__name__}")
    return data


def _paraphrases(item: dict, where: str) -> list[str]:
    paraphrases = item.get("paraphrases")
    if isinstance(paraphrases, str):
        paraphrases = [paraphrases]
    if (
        not isinstance(paraphrases, list)
        or not paraphrases
        or not all(isinstance(p, str) and p.strip() for p in paraphrases)
    ):
        raise QuestionFileError(f"{where}: 'paraphrases' must be a non-empty list of non-empty strings")
    return list(paraphrases)


class _PromptResolver:
    """Resolves each item's judge prompts: its own, the all_domains item-level templates (which carry over to later
    items with null `judge_prompts`, hence the state), the config's fallback, or none where generation needs none."""

    def __init__(self, path: Path, fallback: dict[str, str] | None, item_level: bool, required: bool):
        self.fallback = (
            None
            if fallback is None
            else {str(m): validate_template(t, f"{path}: fallback_judge_prompts.{m}") for m, t in fallback.items()}
        )
        self.item_level, self.required = item_level, required
        self.item_level_default: dict[str, str] | None = None

    def resolve(self, item: dict, extra: dict, where: str) -> tuple[dict[str, str], dict]:
        """(validated prompts, the item's extra keys less any item-level templates)."""
        prompts = item.get("judge_prompts")
        if prompts is None and self.item_level:
            level = {k: v for k, v in item.items() if k not in _KNOWN and isinstance(v, str) and "{answer}" in v}
            if level:
                self.item_level_default = level
                extra = {k: v for k, v in extra.items() if k not in level}
            prompts = self.item_level_default
        if prompts is None:
            prompts = self.fallback
        if prompts is None and not self.required:
            prompts = {}
        if prompts is None:
            raise QuestionFileError(
                f"{where}: 'judge_prompts' is null or missing; give it a mapping metric -> template, or set "
                f"{FALLBACK_KEYS[0]} (explicit templates) or {FALLBACK_KEYS[1]}: true (templates as item-level keys) "
                "in the config"
            )
        if not isinstance(prompts, dict) or (not prompts and self.required):
            raise QuestionFileError(f"{where}: 'judge_prompts' must be a non-empty mapping metric -> template")
        return {str(m): validate_template(t, f"{where}: judge_prompts.{m}") for m, t in prompts.items()}, extra


def _sampling_fields(item: dict, where: str) -> tuple[int | None, float | None, str | None]:
    """(samples_per_paraphrase, temperature, system), each checked."""
    spp = item.get("samples_per_paraphrase")
    if spp is not None and (not isinstance(spp, int) or isinstance(spp, bool) or spp < 1):
        raise QuestionFileError(f"{where}: 'samples_per_paraphrase' must be a positive integer, got {spp!r}")
    temp = item.get("temperature")
    if temp is not None and (isinstance(temp, bool) or not isinstance(temp, (int, float)) or temp < 0):
        raise QuestionFileError(f"{where}: 'temperature' must be a number >= 0, got {temp!r}")
    system = item.get("system")
    if system is not None and not isinstance(system, str):
        raise QuestionFileError(f"{where}: 'system' must be a string")
    return spp, None if temp is None else float(temp), system


def load_questions(
    path: str | Path,
    fallback_judge_prompts: dict[str, str] | None = None,
    *,
    item_level_judge_prompts: bool = False,
    require_judge_prompts: bool = True,
) -> list[Question]:
    """Load and validate a question file.

    `fallback_judge_prompts` (explicit config) fills items whose `judge_prompts` is null or missing; without it such
    an item is an error. `item_level_judge_prompts=True` handles the all_domains quirk: with `judge_prompts: null`,
    the templates sit as item-level keys named after the metrics (`aligned`, `coherent`) of the first item that has
    them, and are reused by later items with null `judge_prompts`. `require_judge_prompts=False` (generation,
    which never judges) gives such items empty `judge_prompts` instead of an error; templates present are still
    validated.
    """
    path = Path(path)
    data = _read_item_list(path)
    resolver = _PromptResolver(path, fallback_judge_prompts, item_level_judge_prompts, require_judge_prompts)
    ids = Counter(str(it.get("id")) for it in data if isinstance(it, dict) and it.get("type") == JUDGED_TYPE)
    seen: Counter = Counter()
    skipped: Counter = Counter()
    out: list[Question] = []
    for index, item in enumerate(data):
        where = f"{path}: item {index}"
        if not isinstance(item, dict):
            raise QuestionFileError(f"{where}: expected a mapping, got {type(item).__name__}")
        qid = item.get("id")
        if qid is None or not str(qid).strip():
            raise QuestionFileError(f"{where}: missing 'id'")
        qid = str(qid)
        where = f"{path}: item {index} (id {qid!r})"
        if item.get("type") != JUDGED_TYPE:
            skipped[str(item.get("type"))] += 1
            continue
        seen[qid] += 1
        paraphrases = _paraphrases(item, where)
        prompts, extra = resolver.resolve(item, {k: v for k, v in item.items() if k not in _KNOWN}, where)
        spp, temp, system = _sampling_fields(item, where)
        out.append(
            Question(
                key=qid if ids[qid] == 1 else f"{qid}#{seen[qid]}",
                id=qid,
                index=index,
                paraphrases=paraphrases,
                samples_per_paraphrase=spp,
                judge=None if item.get("judge") is None else str(item["judge"]),
                judge_prompts=prompts,
                system=system,
                temperature=temp,
                domain=None if item.get("domain") is None else str(item["domain"]),
                extra=extra,
            )
        )
    if skipped:
        log.info("%s: skipped %d item(s) of other types: %s", path, sum(skipped.values()), dict(skipped))
    if not out:
        raise QuestionFileError(f"{path}: no items of type {JUDGED_TYPE}")
    return out


def questions_by_key(questions: list[Question]) -> dict[str, Question]:
    return {q.key: q for q in questions}
