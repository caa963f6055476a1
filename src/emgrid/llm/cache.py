"""Content-addressed cache of LLM replies (the judge's and the dataset stage's): one small JSON file per request,
sharded by key prefix.

Why files and not SQLite: SLURM jobs on a shared file system write concurrently; a temp file + atomic rename per
entry needs no locks, and two jobs writing the same key write the same content. The key hashes everything that
changes the reply (backend kind with the effective endpoint, model, rendered messages, sampling params), so a rerun
with the same inputs finds every reply here and sends nothing. Failed requests go to `errors/` (visible, never read
back as answers). An entry that cannot be read back (truncated by a full disk, edited by hand) is logged with its
key, counted in `corrupt`, and treated as a miss, so the request is sent again and the entry rewritten.

On-disk layout (unchanged since the cache was called the "ledger"): `root/ab/<key>.json` per reply,
`root/errors/ab/<key>.json` for the last failure of a key, `root/state/<name>.json` for resumable work (batches).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from emgrid.io import canonical_json, write_text

log = logging.getLogger(__name__)
ENTRY_FIELDS = ("key", "response", "usage")


def request_key(backend: str, model: str, messages: list[dict], params: dict) -> str:
    """sha256 of the canonical JSON of what determines the reply."""
    payload = {"backend": backend, "model": model, "messages": messages, "params": params}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def _atomic_write_json(path: Path, obj: Any) -> None:
    """Compact JSON, written via temp file + rename: concurrent jobs on a shared file system never see half a file."""
    write_text(path, json.dumps(obj, ensure_ascii=False, sort_keys=True))


class ResponseCache:
    """`root/ab/abcdef....json` for replies, `root/errors/ab/abcdef....json` for the last failure of a key."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.corrupt: list[str] = []  # keys whose entry could not be read this session (re-requested)
        self._lock = threading.Lock()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def error_path(self, key: str) -> Path:
        return self.root / "errors" / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The entry of `key`, or None when absent or unreadable (then logged and counted: the caller re-requests)."""
        p = self.path(key)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            entry = json.loads(text)
            bad = None if isinstance(entry, dict) and all(f in entry for f in ENTRY_FIELDS) else "fields missing"
            if bad is None and entry["key"] != key:
                bad = f"it holds key {str(entry['key'])[:12]}"
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            bad = f"not JSON ({e})"
        if bad is None:
            return entry
        log.warning("LLM cache entry %s (%s) is corrupt: %s; requesting it again", key, p, bad)
        with self._lock:
            if key not in self.corrupt:
                self.corrupt.append(key)
        return None

    def put(self, key: str, request: dict, response: dict, usage: dict | None = None, **extra: Any) -> dict:
        entry = {
            "key": key,
            "request": request,
            "response": response,
            "usage": usage or {"prompt_tokens": 0, "completion_tokens": 0},
            "created": time.time(),
            **extra,
        }
        _atomic_write_json(self.path(key), entry)
        self.error_path(key).unlink(missing_ok=True)
        return entry

    def put_error(self, key: str, request: dict, error: str, permanent: bool, **extra: Any) -> dict:
        entry = {
            "key": key,
            "request": request,
            "error": error,
            "permanent": permanent,
            "created": time.time(),
            **extra,
        }
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

    def state_names(self, prefix: str) -> list[str]:
        """Names of the state files starting with `prefix`, sorted."""
        d = self.root / "state"
        return sorted(p.stem for p in d.glob(f"{prefix}*.json")) if d.is_dir() else []

    def __len__(self) -> int:
        return sum(1 for p in self.root.glob("[0-9a-f][0-9a-f]/*.json"))
