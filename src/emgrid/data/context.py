"""What every step needs to know about the build besides its own parameters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from emgrid.errors import DataError


@dataclass
class Context:
    domain: str
    on_bad_rows: str = "error"  # "error" | "drop"
    trigger: str | None = None
    llm: dict | None = None
    llm_cache_dir: str | None = None  # the LLM response cache (not part of the params: it changes no output)
    progress: bool = True
    keypath: str = ""  # "domains.<domain>.recipe"
    bad_rows: Counter = field(default_factory=Counter)
    bad_examples: list = field(default_factory=list)  # first few "file:line: reason" strings, for the card
    extra_fingerprints: list = field(default_factory=list)  # sources read by transforms (pair)
    step_info: list = field(default_factory=list)  # extra per-step facts for the card (pairing counts)

    def bad_row(self, where: str, reason: str) -> None:
        """Raise on a malformed input row, or count it (reason code = text before the first ':')."""
        code, _, detail = reason.partition(": ")
        msg = f"{where}: {reason}"
        if self.on_bad_rows == "error":
            raise DataError(
                f"{where}: {detail or code}"
                + f" (domain {self.domain}; set {self.keypath}.on_bad_rows: drop to skip such rows)"
            )
        self.bad_rows[code] += 1
        if len(self.bad_examples) < 10:
            self.bad_examples.append(msg)
