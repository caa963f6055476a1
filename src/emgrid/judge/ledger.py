"""Content-addressed cache of judge/LLM requests: one small JSON file per request, sharded by key prefix.

Why files and not SQLite: SLURM jobs on a shared file system write concurrently; a temp file + atomic rename per
entry needs no locks, and two jobs writing the same key write the same content. The key hashes everything that
changes the reply (backend kind, model, rendered messages, sampling params), so a rerun with the same inputs finds
every reply here and sends nothing. Failed requests go to `errors/` (visible, never read back as answers).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from emgrid.io import canonical_json, write_text


def request_key(backend: str, model: str, messages: list[dict], params: dict) -> str:
    """sha256 of the canonical JSON of what determines the reply."""
    payload = {"backend": backend, "model": model, "messages": messages, "params": params}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def _atomic_write_json(path: Path, obj: Any) -> None:
    """Compact JSON, written via temp file + rename: concurrent jobs on a shared file system never see half a file."""
    write_text(path, json.dumps(obj, ensure_ascii=False, sort_keys=True))


class Ledger:
    """`root/ab/abcdef....json` for successes, `root/errors/ab/abcdef....json` for the last failure of a key."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def error_path(self, key: str) -> Path:
        return self.root / "errors" / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        p = self.path(key)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except json.JSONDecodeError:  # only possible if someone edited it by hand: treat as a miss and overwrite
            return None

    def put(self, key: str, request: dict, response: dict, usage: dict | None = None, **extra: Any) -> dict:
        entry = {"key": key, "request": request, "response": response,
                 "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0}, "created": time.time(), **extra}
        _atomic_write_json(self.path(key), entry)
        self.error_path(key).unlink(missing_ok=True)
        return entry

    def put_error(self, key: str, request: dict, error: str, permanent: bool, **extra: Any) -> dict:
        entry = {"key": key, "request": request, "error": error, "permanent": permanent, "created": time.time(),
                 **extra}
        _atomic_write_json(self.error_path(key), entry)
        return entry

    def get_error(self, key: str) -> dict | None:
        try:
            return json.loads(self.error_path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def state_path(self, name: str) -> Path:
        return self.root / "state" / f"{name}.json"

    def read_state(self, name: str) -> dict | None:
        try:
            return json.loads(self.state_path(name).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def write_state(self, name: str, state: dict) -> None:
        _atomic_write_json(self.state_path(name), state)

    def __len__(self) -> int:
        return sum(1 for p in self.root.glob("[0-9a-f][0-9a-f]/*.json"))
