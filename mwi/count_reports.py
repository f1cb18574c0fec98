"""What failed counts tell the admin: one line per spell, never one per mailbox or retry.

A site of 100,000 mailboxes with IMAP down, a wrong master password or users
who never got a voicemail must not write 100,000 lines per reconcile. The
service (:mod:`mailcall.mwi.service`) hands every count's outcome here; the
last error of each user is kept for ``mailcall mwi status``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable

from .counts import CountError

log = logging.getLogger("mailcall.mwi")


class CountReports:
    """The failures of the counts since they last worked, and what was told of them."""

    def __init__(self, where: str, folder: str) -> None:
        self.where = where
        """The IMAP server, as the log names it."""
        self.folder = folder
        self.last_error: dict[str, str] = {}
        """user -> why their last count failed (cleared by a count that works)."""
        self.imap_down: str | None = None
        self._no_folder: set[str] = set()
        self._no_folder_told: frozenset[str] = frozenset()
        self._refused: set[str] = set()
        """Users whose master login was refused since the last summary (one line per problem)."""

    def counted(self, user: str) -> None:
        """`user`'s folder was read."""
        self._no_folder.discard(user)
        self.last_error.pop(user, None)
        if self.imap_down is not None:
            log.info("mwi: counts work again (IMAP server %s); lamps follow the "
                     "mailboxes", self.where)
            self.imap_down = None

    def outage(self, user: str, result: CountError) -> bool:
        """Record `user`'s failure; True when it is the server's (one line per outage)."""
        # Interned: most failures read alike ("no folder yet"), and 100,000 users without
        # a folder must not hold 100,000 copies of the same sentence.
        self.last_error[user] = sys.intern(str(result))
        if result.kind in ("unreachable", "key", "server"):
            if self.imap_down is None:  # one line per outage, whatever the errno of each try
                self.imap_down = result.kind
                log.warning("mwi: %s; lamps keep their last known state until it answers",
                            result)
            return True
        return False

    def mailbox_failed(self, user: str, result: CountError, first: bool) -> None:
        """A failure of `user`'s mailbox alone; `first`: the first of its kind in a row."""
        if result.kind == "folder":
            # Users who never got a voicemail have no folder yet: one summary per reconcile.
            self._no_folder.add(user)
            log.debug("mwi: %s: %s", user, result)
        elif result.kind == "auth":
            # A wrong master password refuses everyone: one line, then a count at the end
            # of the reconcile, not one line per user.
            if not self._refused:
                log.warning("mwi: %s: %s; lamps keep their last known state", user, result)
            self._refused.add(user)
        elif first:
            log.warning("mwi: %s: %s; %s's lamp keeps its last known state", user, result,
                        user)

    def summarise(self, watched: Iterable[str]) -> None:
        """The end of a reconcile: who has no folder yet, whose master login was refused."""
        missing = frozenset(self._no_folder & set(watched))
        if missing and missing != self._no_folder_told:
            names = ", ".join(sorted(missing)[:5]) + (", ..." if len(missing) > 5 else "")
            log.warning("mwi: %d users have no folder %r yet (%s): their lamps stay as they "
                        "are until a voice deposit creates it; if every user is listed, check "
                        "[mail] voice_folder of the policy", len(missing),
                        self.folder, names)
        self._no_folder_told = missing
        if len(self._refused) > 1:
            names = ", ".join(sorted(self._refused)[:5]) + (
                ", ..." if len(self._refused) > 5 else "")
            log.warning("mwi: the IMAP server refused the master login for %d users (%s): "
                        "check the master passdb and the password file (docs/mwi.md)",
                        len(self._refused), names)
        self._refused = set()
