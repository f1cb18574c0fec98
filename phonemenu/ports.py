"""What the menu needs from the mail store and the speech engine, as Protocols.

The real ones are :mod:`mailcall.mailstore` (IMAP on the user's behalf) and
:mod:`mailcall.speech` / :mod:`mailcall.playback`; the menu is written
against these shapes so that its state machine and AGI driving can be read
(and type-checked) on their own. Only the real implementations are used by
the handler the plugin builds and by the tests of the real flow.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, Protocol


class MailboxSession(Protocol):
    """One call's IMAP session (``mailcall.mailstore.MailboxSession``)."""

    async def voice_messages(self) -> list[Any]: ...
    async def voice_listing(self, skip: frozenset[int] = frozenset()) -> Any:
        """``mailcall.mailstore.VoiceMail``: the list and whether its counts are exact."""
    async def unread_mail(self, before: int | None = None) -> Any: ...
    async def audio(self, message: Any) -> tuple[str, bytes]: ...
    async def readable(self, message: Any, *, language: str | None = None) -> Any: ...
    async def mark_seen(self, message: Any) -> None: ...
    async def mark_unseen(self, message: Any) -> None: ...
    async def mark_answered(self, message: Any) -> bool: ...
    async def move_to_trash(self, message: Any) -> None: ...


class MailStore(Protocol):
    def session(self, login: str, *,
                address: str | None = None) -> AbstractAsyncContextManager[MailboxSession]: ...


class Chunk(Protocol):
    stream_name: str
    seconds: float


class Speaker(Protocol):
    def speak(self, text: str, language: str | None, folder: Path, *,
              fallback: str = "en", cache: bool = False) -> AsyncIterator[Chunk]: ...


Decoder = Callable[[bytes, str, Path], float]
"""``mailcall.playback.decode_to_sln(data, mime_type, out_path)``: blocking, returns seconds."""
