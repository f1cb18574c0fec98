"""Where the phone menu finds a user's mailbox, and the bounds it keeps.

The login part is :class:`mailcall.imap.ImapSettings`, shared with the lamp; the
phone menu has its own master user by default (``mailcall-phone``, its own
password file), because unlike the lamp it changes mailboxes (flags, moves to
Trash): a leaked lamp password must not let anyone delete mail, and the
server's ACLs can grant each account exactly its rights (docs/mailstore.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcall.imap import ImapSettings


@dataclass(frozen=True, slots=True)
class MailstoreSettings(ImapSettings):
    master_user: str = "mailcall-phone"
    password_file: str = "/etc/mailcall/imap-phone.secret"  # noqa: S105 - a path
    timeout: float = 1.5
    """Seconds for connect + login, and for every operation of a session: the menu must
    apologise within 2 s when IMAP is down, slow or refusing."""
    voice_folder: str = "Voicemail"
    """[mail] voice_folder of the policy."""
    trash_folder: str = "Trash"
    """Used only when no folder carries SPECIAL-USE \\Trash (RFC 6154); created if missing."""
    max_connections: int = 16
    """IMAP connections open at once for the phone menu, process-wide (one per call)."""
    max_listed: int = 50
    """Most summaries one list returns (the count stays exact): a caller never hears more."""
    max_audio_bytes: int = 20 * 1024 * 1024
    """Largest voice attachment fetched (a 20-minute WAV is about 19 MB)."""

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.max_connections < 1 or self.max_listed < 1:
            raise ValueError("mailstore settings: timeout must be > 0, max_connections and "
                             "max_listed >= 1")
