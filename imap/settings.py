"""Where the IMAP server is and how mailcall logs in to it for a user."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImapSettings:
    host: str = "127.0.0.1"
    port: int = 143
    security: str = "none"
    """"none" (loopback only: the master password would travel in clear), "starttls", "tls"."""
    login: str = "master"
    """"master" (Dovecot's ``user*master`` LOGIN) or "authzid" (SASL PLAIN, RFC 4616)."""
    master_user: str = "mailcall-mwi"
    password_file: str = "/etc/mailcall/imap-master.secret"  # noqa: S105 - a path
    separator: str = "*"
    """Dovecot's ``auth_master_user_separator``."""
    timeout: float = 10.0
    """Seconds any one socket operation may take."""

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def quote(name: str) -> str:
    """An IMAP quoted string (RFC 3501), for user and folder names imaplib passes raw."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
