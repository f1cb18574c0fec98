"""The lamp's memory, without I/O: latest counts per mailbox, what Asterisk was told, what is due.

Kept apart from sockets and clocks (times are passed in) so that coalescing
can be tested exactly:

* the latest counts read from IMAP replace older ones: while AMI is down,
  nothing grows but one entry per mailbox, and reconnecting sends each lamp
  its latest state once;
* a mailbox is due only when its counts differ from what was last published
  (or after a forced republish: Asterisk restarted or AMI reconnected);
* a mailbox is not published more often than once per ``min_interval``: a
  flood of flag changes gives a few updates, the last of which is the latest
  state (a due mailbox is never dropped, only delayed);
* failing to read a mailbox changes nothing here: the last known counts stay,
  and :meth:`failed` tells the caller whether to log (once per failure spell).

Memory: an entry in each of three dicts per watched mailbox (known, published, sent
at), with shared :class:`Counts`.
"""

from __future__ import annotations

import heapq

from .counts import Counts


class Ledger:
    __slots__ = ("_delayed", "_due", "_failing", "_known", "_published", "_retired",
                 "_sent_at", "_waiting", "min_interval")

    def __init__(self, min_interval: float = 0.25) -> None:
        self.min_interval = min_interval
        self._known: dict[str, Counts] = {}
        self._published: dict[str, Counts] = {}
        self._sent_at: dict[str, float] = {}
        self._due: dict[str, None] = {}
        """Insertion-ordered set of mailboxes to publish now."""
        self._delayed: list[tuple[float, str]] = []
        self._waiting: set[str] = set()
        """Mailboxes in the heap (each at most once, however often it changes)."""
        self._failing: dict[str, str] = {}
        self._retired: dict[str, None] = {}
        """Mailboxes nobody is shown under any more, to switch off in Asterisk (MWIDelete)."""

    def __len__(self) -> int:
        return len(self._known)

    def known(self, mailbox: str) -> Counts | None:
        return self._known.get(mailbox)

    def published(self, mailbox: str) -> Counts | None:
        return self._published.get(mailbox)

    def observe(self, mailbox: str, value: Counts) -> bool:
        """Counts read from the mailbox; True when the lamp must change."""
        self._known[mailbox] = value
        self._failing.pop(mailbox, None)
        if self._published.get(mailbox) != value:
            self._due[mailbox] = None
            return True
        self._due.pop(mailbox, None)
        return False

    def failed(self, mailbox: str, kind: str) -> bool:
        """Reading `mailbox` failed: nothing changes; True if this starts a failure spell."""
        first = self._failing.get(mailbox) != kind
        self._failing[mailbox] = kind
        return first

    @property
    def failing(self) -> int:
        return len(self._failing)

    def republish_all(self) -> None:
        """Asterisk's state is unknown (it restarted, or AMI reconnected): send every known lamp."""
        self._published.clear()
        for mailbox in self._known:
            self._due[mailbox] = None

    def forget(self, mailbox: str) -> None:
        """The user left the policy."""
        for table in (self._known, self._published, self._sent_at, self._due, self._failing):
            table.pop(mailbox, None)

    def retire(self, mailbox: str) -> None:
        """Nobody is shown under `mailbox` any more: forget it, and delete it in Asterisk."""
        self.forget(mailbox)
        self._waiting.discard(mailbox)  # its heap entry is skipped by take()
        self._retired[mailbox] = None

    def delete_again(self, mailbox: str) -> None:
        """The delete could not be sent (AMI down): send it on the next connection, unless
        the mailbox is watched again meanwhile (its counts then go out instead)."""
        if mailbox not in self._known:
            self._retired[mailbox] = None

    def unretire(self, mailbox: str) -> None:
        """`mailbox` is watched (again): it must not be deleted."""
        self._retired.pop(mailbox, None)

    def take_retired(self) -> str | None:
        """The next mailbox to delete in Asterisk, or None."""
        if not self._retired:
            return None
        mailbox = next(iter(self._retired))
        del self._retired[mailbox]
        return mailbox

    @property
    def due(self) -> int:
        return len(self._due) + len(self._waiting) + len(self._retired)

    def take(self, now: float) -> tuple[str, Counts] | None:
        """The next (mailbox, counts) to publish now, or None.

        A mailbox published less than ``min_interval`` ago waits in a heap until its
        time; it is taken then with the counts known at that moment.
        """
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _, mailbox = heapq.heappop(delayed)
            self._waiting.discard(mailbox)
            if mailbox in self._known and self._published.get(mailbox) != self._known[mailbox]:
                self._due[mailbox] = None
        while self._due:
            mailbox = next(iter(self._due))
            del self._due[mailbox]
            value = self._known.get(mailbox)
            if value is None:
                continue
            last = self._sent_at.get(mailbox)
            if last is not None and now - last < self.min_interval:
                if mailbox not in self._waiting:
                    self._waiting.add(mailbox)
                    heapq.heappush(delayed, (last + self.min_interval, mailbox))
                continue
            self._sent_at[mailbox] = now
            return mailbox, value
        return None

    def next_time(self) -> float | None:
        """When a delayed mailbox becomes due (None: nothing is delayed)."""
        return self._delayed[0][0] if self._delayed else None

    def sent(self, mailbox: str, value: Counts) -> None:
        """Asterisk accepted `value` for `mailbox`."""
        if mailbox not in self._known:
            return  # retired while it was being sent: Asterisk gets the delete after it
        self._published[mailbox] = value
        if self._known.get(mailbox) != value:
            self._due[mailbox] = None  # changed again while it was being sent

    def retry_at(self, mailbox: str, at: float) -> None:
        """Asterisk refused the update: send the latest counts again at time `at`, not
        before (a refusal repeats until the admin fixes Asterisk: no tight loop)."""
        self._due.pop(mailbox, None)
        if mailbox not in self._known:
            return
        if mailbox not in self._waiting:
            self._waiting.add(mailbox)
            heapq.heappush(self._delayed, (at, mailbox))

    def unsent(self, mailbox: str) -> None:
        """Publishing failed (AMI down): due again, with the latest counts when it is retried."""
        self._sent_at.pop(mailbox, None)
        self._due[mailbox] = None
