"""Telling a user's mobile about new mail, voicemail and fax.

One home for everything between "this user should be told" (a ``Notify``
action of a plan) and "their gateway took the SMS":

- ``notice``: :class:`MailNotice`, what the Sieve bridge and the deposit worker submit;
- ``dispatcher``: :class:`Dispatcher`, the ``runtime.notifier`` service (loops,
  de-duplication, rate limit, retries); ``sending``: what one attempt ends in;
- ``store``: the durable queue, one SQLite file beside the spool;
- ``retry``: the backoff schedule; ``channel``: the channel contract and its errors;
- ``channels`` / ``relay``: the built-in channels and the SMTP route to the outside;
- ``wording``: the text of a notification.

See docs/notifications.md.
"""

from .channel import (
    Channel,
    ChannelError,
    PermanentChannelError,
    TemporaryChannelError,
)
from .dispatcher import Dispatcher
from .notice import MailNotice, loop_risk
from .retry import Retry
from .store import queue_path

__all__ = [
    "Channel",
    "ChannelError",
    "Dispatcher",
    "MailNotice",
    "PermanentChannelError",
    "Retry",
    "TemporaryChannelError",
    "loop_risk",
    "queue_path",
]
