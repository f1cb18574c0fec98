"""Server-side sessions: the cookie holds a random id and nothing else.

Why not a signed cookie (itsdangerous): a session kept in the server's memory
ends the moment the user logs out or IT clears it, and there is nothing in the
cookie to sign or to leak. The cost is that a restart of ``mailcall serve`` logs
everyone out, which is acceptable for a page used a few times a year per user.

A new id is made at login (the anonymous session that carried the login form's
CSRF token is dropped: no session fixation). Each session has its own CSRF
token, compared in constant time. Memory is bounded: at most ``max_sessions``,
the stalest dropped first; idle and absolute lifetimes end the others.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_SESSIONS = 20_000


@dataclass(slots=True)
class Session:
    id: str
    csrf: str
    created: float
    seen: float
    user: str | None = None
    """The policy user id once logged in (None: the login form's anonymous session)."""
    flash: list[tuple[str, str]] = field(default_factory=list)
    """(kind, message key) shown once on the next page."""
    client: Any = None
    """What the user's ManageSieve account held at login (a ClientScripts; None: not read,
    see `client_read_at`). Never the password it was read with."""
    client_read_at: datetime | None = None
    """When it was read (None: reading is off in web.toml [managesieve])."""

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


class Sessions:
    def __init__(self, *, idle: float, maximum: float, max_sessions: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle = idle
        self.maximum = maximum
        self.max_sessions = max_sessions
        self.clock = clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()

    def new(self, user: str | None = None) -> Session:
        now = self.clock()
        s = Session(id=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                    created=now, seen=now, user=user)
        self._by_id[s.id] = s
        while len(self._by_id) > self.max_sessions:
            self._by_id.popitem(last=False)
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        s = self._by_id.get(sid)
        if s is None:
            return None
        now = self.clock()
        if now - s.seen > self.idle or now - s.created > self.maximum:
            del self._by_id[sid]
            return None
        s.seen = now
        self._by_id.move_to_end(sid)
        return s

    def login(self, old: Session | None, user: str) -> Session:
        """A fresh session for `user`; the one the login form used is forgotten."""
        if old is not None:
            self._by_id.pop(old.id, None)
        return self.new(user)

    def drop(self, session: Session) -> None:
        self._by_id.pop(session.id, None)

    def drop_user(self, user: str) -> int:
        ids = [sid for sid, s in self._by_id.items() if s.user == user]
        for sid in ids:
            del self._by_id[sid]
        return len(ids)

    def __len__(self) -> int:
        return len(self._by_id)
