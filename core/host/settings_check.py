"""The one check of the services' own TOML files (mwi.toml, web.toml, phone-menu.toml).

Each service reads its file through :class:`SettingsFile`, so that every mistake is
reported the way policy problems are: the file, the line, the table and key, what is
wrong and what is expected (``/etc/mailcall/mwi.toml:7: [imap] port: must be a port
number 1-65535, not 0``), raised as the service's own error class, and the first
mistake stops the service before it starts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mailcall.core.policy.files import locate

T = TypeVar("T")
Converter = Callable[[str, Any], Any]
"""``conv(key, value)`` → the checked value; calls ``fail`` otherwise."""

_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)")
_WORD = re.compile(r"[A-Za-z0-9_.@+-]{1,128}").fullmatch


class SettingsFile:
    """One service settings file being checked: where it is, its text, its error class."""

    def __init__(self, path: Path, error: type[Exception], text: str = "") -> None:
        self.path = path
        self.error = error
        self.text = text

    @classmethod
    def read(cls, path: Path, error: type[Exception], *,
             missing: str) -> tuple[SettingsFile, dict[str, Any]]:
        """The file and its tables; `missing` says, when it does not exist, why it was
        looked for (``$MAILCALL_MWI_CONFIG or mwi.toml beside the policy``)."""
        try:
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            raise error(f"{path}: no such file ({missing})") from None
        except UnicodeDecodeError as exc:
            raise error(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") \
                from None
        except OSError as exc:
            raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
        check = cls(Path(path), error, text)
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = _TOML_POS.search(str(exc))
            line = f":{found.group(1)}" if found else ""
            raise error(f"{path}{line}: not valid TOML: {_TOML_POS.sub('', str(exc))}") \
                from None
        except RecursionError:
            raise error(f"{path}: not valid TOML: values nested hundreds of levels deep") \
                from None
        return check, data

    # -- reporting -------------------------------------------------------------
    def where(self, key: str) -> str:
        """``path:line: [table] key`` for "table.key", ``path:line: [table]`` for "table"."""
        table, _, name = key.partition(".")
        line = locate(self.text, tuple(p for p in (table, name) if p)) if table else None
        head = f"{self.path}:{line}" if line else f"{self.path}"
        if not table:
            return head
        return f"{head}: [{table}] {name}" if name else f"{head}: [{table}]"

    def fail(self, key: str, message: str) -> NoReturn:
        raise self.error(f"{self.where(key)}: {message}")

    # -- structure -------------------------------------------------------------
    def tables(self, data: Mapping[str, Any], known: Sequence[str]) -> None:
        """Refuse tables the file does not have (a typo would silently keep the defaults)."""
        unknown = sorted(set(data) - set(known))
        if unknown:
            self.fail(unknown[0], f"unknown table (tables: {', '.join(f'[{k}]' for k in known)})")
        for name in known:
            if name in data and not isinstance(data[name], dict):
                self.fail(name, "must be a table")

    def keys(self, data: Mapping[str, Any], name: str, known: Sequence[str]) -> dict[str, Any]:
        """Table `name` (empty when absent), every key of it one of `known`."""
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            self.fail(name, "must be a table")
        unknown = sorted(set(raw) - set(known))
        if unknown:
            self.fail(f"{name}.{unknown[0]}", f"unknown key (known: {', '.join(known)})")
        return raw

    def table(self, data: Mapping[str, Any], name: str, base: T,
              fields: Mapping[str, Converter]) -> T:
        """`base` (a dataclass) with the keys of table `name` each checked by its converter."""
        raw = self.keys(data, name, tuple(fields))
        values = {key: conv(f"{name}.{key}", raw[key]) for key, conv in fields.items()
                  if key in raw}
        return replace(base, **values)  # type: ignore[type-var]

    # -- converters: conv(key, value) -------------------------------------------
    def text_value(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {value!r}")
        return value.strip()

    def host(self, key: str, value: Any) -> str:
        text = self.text_value(key, value)
        if any(c.isspace() for c in text):
            self.fail(key, f"{text!r} is not a host name or address")
        return text

    def port(self, key: str, value: Any) -> int:
        if type(value) is not int or not 1 <= value <= 65535:
            self.fail(key, f"must be a port number 1-65535, not {value!r}")
        return value

    def word(self, key: str, value: Any) -> str:
        text = self.text_value(key, value)
        if not _WORD(text):
            self.fail(key, f"{text!r}: letters, digits and _ . @ + - only")
        return text

    def path_value(self, key: str, value: Any) -> str:
        text = self.text_value(key, value)
        if not text.startswith("/"):
            self.fail(key, f"{text!r} must be an absolute path")
        return text

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {value!r}")
        return value

    def names(self, key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"must be a list of strings, not {value!r}")
        return tuple(value)

    def choice(self, *options: str) -> Converter:
        def conv(key: str, value: Any) -> str:
            if value not in options:
                self.fail(key, f"must be one of {', '.join(options)}, not {value!r}")
            return value
        return conv

    def integer(self, low: int, high: int) -> Converter:
        def conv(key: str, value: Any) -> int:
            if type(value) is not int or not low <= value <= high:
                self.fail(key, f"must be a whole number {low}-{high}, not {value!r}")
            return value
        return conv

    def number(self, low: float, high: float, unit: str = "") -> Converter:
        what = f"a number of {unit}" if unit else "a number"

        def conv(key: str, value: Any) -> float:
            if type(value) not in (int, float) or not low <= value <= high:
                self.fail(key, f"must be {what} {low:g}-{high:g}, not {value!r}")
            return float(value)
        return conv
