"""Plain YAML from a file a user hands us, with one line naming the file for every way it can be unreadable.

The file must be a regular one (a pipe or a device never ends) of a sensible size; it is read with
``yaml.safe_load`` only (a ``!!python/...`` tag is refused, never run). The callers check what the top level is.
"""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import yaml

__all__ = ["check_regular_file", "is_plain_value", "read_plain_yaml"]


def check_regular_file(path: Path, what: str, why: str) -> None:
    """``ValueError`` (one line: ``path``, then ``why``) unless ``path``, a ``what``, is a regular file: checked before
    it is read, since a pipe or a device never ends."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        raise ValueError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path}: not a regular file ({why})")


def read_plain_yaml(
    path: Path,
    what: str,
    max_bytes: int,
    *,
    encoding: str = "utf-8",
    refused: str = "",
    check: Callable[[Path], None] | None = None,
) -> object:
    """The YAML document in ``path``, a ``what`` (``"data YAML"``), or ``ValueError`` in one line starting with
    ``path``. ``check(path)`` runs once the file is known to be a regular one of at most ``max_bytes``, before it is
    read; ``refused`` ends the line about a YAML tag (why tags are refused)."""
    check_regular_file(path, what, f"a {what} is a text file")
    if path.stat().st_size > max_bytes:
        raise ValueError(f"{path}: {path.stat().st_size} bytes, too large for a {what}")
    if check is not None:
        check(path)
    try:
        text = path.read_bytes().decode(encoding)
    except OSError as error:
        raise ValueError(f"{path}: cannot read the {what} ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text (byte {error.start})") from None
    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as error:
        kind = "a Python tag (!!python/...)" if "python/" in str(error) else "an unsupported YAML tag"
        raise ValueError(f"{path}: holds {kind}, refused{refused}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or type(error).__name__
        raise ValueError(f"{path}: YAML syntax error{line} ({problem})") from None
    except (ValueError, TypeError, RecursionError) as error:  # e.g. a timestamp out of range, nesting too deep
        raise ValueError(f"{path}: unreadable YAML ({type(error).__name__})") from None


def is_plain_value(value: object, max_text: int, max_items: int, max_depth: int = 4, depth: int = 0) -> bool:
    """A plain YAML value: None, bool, number, text of at most ``max_text`` characters, or lists and string-keyed
    mappings of them, each of at most ``max_items`` entries and nested at most ``max_depth`` deep."""
    if value is None or isinstance(value, bool | int | float):
        return True
    if isinstance(value, str):
        return len(value) <= max_text
    if depth >= max_depth:
        return False
    if isinstance(value, list | tuple):
        return len(value) <= max_items and all(
            is_plain_value(v, max_text, max_items, max_depth, depth + 1) for v in value
        )
    if isinstance(value, dict):
        return len(value) <= max_items and all(
            isinstance(k, str) and is_plain_value(v, max_text, max_items, max_depth, depth + 1)
            for k, v in value.items()
        )
    return False
