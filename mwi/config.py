"""mwi.toml: where Asterisk's AMI and the IMAP server are, and how the lamp behaves.

Kept out of the policy file on purpose: it names secret files and server
addresses that only the machine running ``mailcall serve`` needs, and the
policy is shared and reviewed by people who should not see them. It is read
from ``$MAILCALL_MWI_CONFIG``, else ``mwi.toml`` beside the policy file; when
neither exists the lamp is off (``mailcall serve`` says so once).

Every problem names the file, the table and the key.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailcall.core.host.service_files import settings_file
from mailcall.imap import is_loopback

from .imap import ImapSettings

ENV = "MAILCALL_MWI_CONFIG"


class MwiConfigError(Exception):
    """mwi.toml cannot be used; the message names the file, table and key."""


@dataclass(frozen=True, slots=True)
class AmiSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "mailcall"
    secret_file: str = "/etc/mailcall/ami.secret"  # noqa: S105 - a path


@dataclass(frozen=True, slots=True)
class LampSettings:
    mailbox: str = "{id}@mailcall"
    """Mailbox id given to Asterisk; {id} is the user id, {extension} the first extension."""
    login: str = "email"
    """IMAP user name of a user: "email" (the policy's address) or "id"."""
    trigger_socket: str | None = None
    """UNIX socket the IMAPSieve script's ``execute`` reaches (None: no IMAP trigger)."""
    control_socket: str | None = None
    """UNIX socket ``mailcall mwi status|sync`` ask the running service on (None:
    ``mwi-control.sock`` in the spool directory)."""
    reconcile_interval: float = 900.0
    debounce: float = 0.05
    min_interval: float = 0.25


@dataclass(frozen=True, slots=True)
class MwiSettings:
    path: Path
    ami: AmiSettings = field(default_factory=AmiSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    lamp: LampSettings = field(default_factory=LampSettings)


def config_path(policy_path: Path | None) -> Path | None:
    """The mwi.toml to use, or None when the lamp is not configured."""
    return settings_file(policy_path, "mwi.toml", ENV)


_TEMPLATE_FIELDS = re.compile(r"\{([^{}]*)\}")
_MAILBOX_OK = re.compile(r"[A-Za-z0-9_.@{}+-]+").fullmatch


def load(path: Path, *, voice_folder: str = "Voicemail") -> MwiSettings:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise MwiConfigError(f"{path}: no such file ({ENV} or mwi.toml beside the policy)") \
            from None
    except OSError as exc:
        raise MwiConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MwiConfigError(f"{path}: not valid TOML: {exc}") from None
    check = _Check(path)
    unknown = set(data) - {"ami", "imap", "lamp"}
    if unknown:
        check.fail("", f"unknown table(s) {sorted(unknown)}: expected [ami], [imap], [lamp]")
    ami = check.table(data, "ami", AmiSettings(), {
        "host": check.host, "port": check.port, "username": check.word,
        "secret_file": check.path})
    imap = check.table(data, "imap", ImapSettings(folder=voice_folder), {
        "host": check.host, "port": check.port,
        "security": check.choice("none", "starttls", "tls"),
        "login": check.choice("master", "authzid"), "master_user": check.word,
        "password_file": check.path, "separator": check.separator, "folder": check.folder,
"max_connections": check.integer(1, 64),
        "timeout": check.number(0.5, 120)})
    lamp = check.table(data, "lamp", LampSettings(), {
        "mailbox": check.mailbox, "login": check.choice("email", "id"),
        "trigger_socket": check.path, "control_socket": check.path,
        "reconcile_interval": check.number(10, 86400),
        "debounce": check.number(0, 1), "min_interval": check.number(0, 10)})
    if imap.security == "none" and not is_loopback(imap.host):
        check.fail("imap.security", f"'none' sends the master password in clear to "
                   f"{imap.host}: use 'starttls' or 'tls', or an IMAP server on loopback")
    return MwiSettings(path=path, ami=ami, imap=imap, lamp=lamp)


class _Check:
    def __init__(self, path: Path) -> None:
        self.path_ = path

    def fail(self, key: str, message: str) -> None:
        where = f" [{key.split('.')[0]}] {key.split('.', 1)[1]}" if "." in key else ""
        raise MwiConfigError(f"{self.path_}:{where}: {message}")

    def table(self, data: dict[str, Any], name: str, base: Any, fields: dict[str, Any]) -> Any:
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            self.fail(f"{name}.", "must be a table")
        unknown = set(raw) - set(fields)
        if unknown:
            self.fail(f"{name}.{sorted(unknown)[0]}", f"unknown key (known: {', '.join(fields)})")
        values = {key: conv(f"{name}.{key}", raw[key]) for key, conv in fields.items()
                  if key in raw}
        return replace(base, **values)

    def _str(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, not {value!r}")
        return value.strip()

    def host(self, key: str, value: Any) -> str:
        text = self._str(key, value)
        if any(c.isspace() for c in text):
            self.fail(key, f"{text!r} is not a host name or address")
        return text

    def port(self, key: str, value: Any) -> int:
        if type(value) is not int or not 1 <= value <= 65535:
            self.fail(key, f"must be a port number 1-65535, not {value!r}")
        return value

    def word(self, key: str, value: Any) -> str:
        text = self._str(key, value)
        if not re.fullmatch(r"[A-Za-z0-9_.@+-]{1,128}", text):
            self.fail(key, f"{text!r}: letters, digits and _ . @ + - only")
        return text

    def path(self, key: str, value: Any) -> str:
        text = self._str(key, value)
        if not text.startswith("/"):
            self.fail(key, f"{text!r} must be an absolute path")
        return text

    def separator(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) != 1 or value.isalnum() or value.isspace():
            self.fail(key, f"must be one punctuation character (Dovecot's "
                      f"auth_master_user_separator), not {value!r}")
        return value

    def folder(self, key: str, value: Any) -> str:
        text = self._str(key, value)
        if not text.isascii() or any(ord(c) < 32 for c in text):
            self.fail(key, f"{text!r}: printable ASCII only")
        return text

    def mailbox(self, key: str, value: Any) -> str:
        text = self._str(key, value)
        names = set(_TEMPLATE_FIELDS.findall(text))
        if not names or not names <= {"id", "extension"} or not _MAILBOX_OK(text):
            self.fail(key, f"{text!r}: a mailbox id such as '{{id}}@mailcall' "
                      f"({{id}} or {{extension}}; letters, digits, _ . @ + -)")
        return text

    def choice(self, *options: str):
        def conv(key: str, value: Any) -> str:
            if value not in options:
                self.fail(key, f"must be one of {', '.join(options)}, not {value!r}")
            return value
        return conv

    def integer(self, low: int, high: int):
        def conv(key: str, value: Any) -> int:
            if type(value) is not int or not low <= value <= high:
                self.fail(key, f"must be a whole number {low}-{high}, not {value!r}")
            return value
        return conv

    def number(self, low: float, high: float):
        def conv(key: str, value: Any) -> float:
            if type(value) not in (int, float) or not low <= value <= high:
                self.fail(key, f"must be a number {low:g}-{high:g}, not {value!r}")
            return float(value)
        return conv
