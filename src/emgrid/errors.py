"""Error types. Every message names the file, line or config key at fault, so a user can fix it without a traceback."""


class EmgridError(Exception):
    """Base class of all errors emgrid raises on bad input."""


class ConfigError(EmgridError):
    """A config key is missing, of the wrong type, or inconsistent (message names the key path)."""


class DataError(EmgridError):
    """A data file is malformed (message names file and line)."""


class ModelSourceError(EmgridError):
    """A model source is unknown or cannot be resolved offline."""


class QuestionFileError(EmgridError):
    """An evaluation question file is malformed (message names file and item)."""


class JudgeError(EmgridError):
    """A judge backend failed permanently (bad key, bad request) or returned something unusable."""


def reject_unknown_keys(d: dict, spec_cls, where: str) -> None:
    """A typo in a config block fails loudly, naming the full key path, instead of being silently ignored."""
    import dataclasses

    known = {f.name for f in dataclasses.fields(spec_cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        paths = ", ".join(f"'{where}.{k}'" for k in unknown)
        raise ConfigError(f"{where}: unknown key(s) {unknown} ({paths}); allowed: {sorted(known)}")
