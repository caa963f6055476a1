"""File IO that never leaves half-written outputs and always names the file and line of bad input."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from emgrid.errors import DataError


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the stable text we hash and compare."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def iter_text_lines(path: str | Path) -> Iterator[tuple[int, str, str | None]]:
    """Yield (line_number, text, problem) for every line of a UTF-8 text file; `problem` is None or says which byte
    is not UTF-8, so callers can name file:line and decide to fail or skip (a bare UnicodeDecodeError names neither).
    """
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as e:  # undecodable bytes became lone surrogates U+DC80..U+DCFF
                byte = ord(line[e.start]) - 0xDC00
                yield (
                    lineno,
                    line,
                    (f"not valid UTF-8 (byte 0x{byte:02x} at column {e.start + 1}; re-save the file as UTF-8)"),
                )
                continue
            yield lineno, line, None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line_number, object) for every non-blank line; a bad line raises DataError naming file:line."""
    path = Path(path)
    for lineno, line, problem in iter_text_lines(path):
        if problem:
            raise DataError(f"{path}:{lineno}: {problem}")
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def read_jsonl(path: str | Path) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(root: str | Path) -> None:
    """Give every directory and file under `root` the mode a plain mkdir/open would (0777/0666 minus the umask).

    Some writers ignore the umask (safetensors saves weights 0600); call this before renaming a built tree into place.
    """
    mask = _umask()
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o777 & ~mask)
        for name in filenames:
            f = os.path.join(dirpath, name)
            if not os.path.islink(f):
                os.chmod(f, 0o666 & ~mask)


def _atomic_write(path: Path, write, binary: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs must be readable by collaborators
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict]) -> int:
    """Write rows atomically (temp file + rename); returns the row count."""
    n = 0

    def write(f):
        nonlocal n
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1

    _atomic_write(Path(path), write)
    return n


def write_json(path: str | Path, obj: Any) -> None:
    _atomic_write(Path(path), lambda f: f.write(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True) + "\n"))


def write_text(path: str | Path, text: str) -> None:
    _atomic_write(Path(path), lambda f: f.write(text))


def write_npz(path: str | Path, arrays: dict) -> None:
    """numpy arrays as one .npz file, atomically (temp file + rename), following the umask."""
    import numpy as np

    _atomic_write(Path(path), lambda f: np.savez(f, **arrays), binary=True)


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
