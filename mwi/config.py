"""mwi.toml: where Asterisk's AMI and the IMAP server are, and how the lamp behaves.

Kept out of the policy file on purpose: it names secret files and server
addresses that only the machine running ``mailcall serve`` needs, and the
policy is shared and reviewed by people who should not see them. It is read
from ``$MAILCALL_MWI_CONFIG``, else ``mwi.toml`` beside the policy file; when
neither exists the lamp is off (``mailcall serve`` says so once).

Every problem names the file, the line, the table and the key
(:mod:`mailcall.core.host.settings_check`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailcall.core.host.service_files import settings_file
from mailcall.core.host.settings_check import SettingsFile
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
    check, data = _MwiCheck.read(path, MwiConfigError,
                                 missing=f"${ENV} or mwi.toml beside the policy")
    check.tables(data, ("ami", "imap", "lamp"))
    ami = check.table(data, "ami", AmiSettings(), {
        "host": check.host, "port": check.port, "username": check.word,
        "secret_file": check.path_value})
    imap = check.table(data, "imap", ImapSettings(folder=voice_folder), {
        "host": check.host, "port": check.port,
        "security": check.choice("none", "starttls", "tls"),
        "login": check.choice("master", "authzid"), "master_user": check.word,
        "password_file": check.path_value, "separator": check.separator,
        "folder": check.folder, "max_connections": check.integer(1, 64),
        "timeout": check.number(0.5, 120)})
    lamp = check.table(data, "lamp", LampSettings(), {
        "mailbox": check.mailbox, "login": check.choice("email", "id"),
        "trigger_socket": check.path_value, "control_socket": check.path_value,
        "reconcile_interval": check.number(10, 86400),
        "debounce": check.number(0, 1), "min_interval": check.number(0, 10)})
    if imap.security == "none" and not is_loopback(imap.host):
        check.fail("imap.security", f"'none' sends the master password in clear to "
                   f"{imap.host}: use 'starttls' or 'tls', or an IMAP server on loopback")
    return MwiSettings(path=path, ami=ami, imap=imap, lamp=lamp)


class _MwiCheck(SettingsFile):
    """The shared checks, and the values only mwi.toml has."""

    def separator(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or len(value) != 1 or value.isalnum() or value.isspace():
            self.fail(key, f"must be one punctuation character (Dovecot's "
                      f"auth_master_user_separator), not {value!r}")
        return value

    def folder(self, key: str, value: Any) -> str:
        text = self.text_value(key, value)
        if not text.isascii() or any(ord(c) < 32 for c in text):
            self.fail(key, f"{text!r}: printable ASCII only")
        return text

    def mailbox(self, key: str, value: Any) -> str:
        text = self.text_value(key, value)
        names = set(_TEMPLATE_FIELDS.findall(text))
        if not names or not names <= {"id", "extension"} or not _MAILBOX_OK(text):
            self.fail(key, f"{text!r}: a mailbox id such as '{{id}}@mailcall' "
                      f"({{id}} or {{extension}}; letters, digits, _ . @ + -)")
        return text
