"""Phone PINs, stored only as salted scrypt hashes, and checked off the event loop.

The policy file is read by several people and copied into backups; a PIN
written in it in clear would be a PIN known to all of them.

New hashes cost ``N = 2**12`` (r 8, p 1: 4 MiB); a hash keeps verifying with
the parameters it carries, so hashes made at the old ``2**14`` still work.
Why this cost, and what the shared lockout does instead: docs/phone-menu.md
("PIN checks").

Checks run on one small pool of threads of their own (:func:`check_user_pin`):
scrypt releases the GIL, so the event loop keeps answering the calls already
in a menu, and a burst of logins queues there instead of filling asyncio's
default executor, which the menus need for speech and decoding. The pool's
threads run at a lower CPU priority than the rest of the process, so on a
busy core a call's key press goes before someone else's PIN check.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailcall.core.policy.model import Policy

log = logging.getLogger("mailcall.pins")

_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
N, R, P = 2**12, 8, 1
"""The cost of new hashes (scrypt's N, r, p)."""
_MAXMEM = 2**27

CHECK_THREADS = 1
"""PIN checks that run at once in this process: one core at most, however many calls
type their PIN together (or an attacker's calls do)."""
CHECK_NICENESS = 10
"""How much lower the checks' CPU priority is than the process's (Linux, per thread)."""


def hash_pin(pin: str, *, n: int = N) -> str:
    """A new salted hash of `pin` (4 to 12 digits) at cost `n` (default :data:`N`)."""
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=R, p=P, dklen=32, maxmem=_MAXMEM)
    b64 = base64.b64encode
    return f"scrypt${n}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def _parse(pin_hash: str) -> tuple[int, int, int, bytes, bytes] | None:
    """The hash's parameters, or None unless scrypt can really use them.

    `mailcall check` accepts only what this accepts, so a truncated copy-paste is
    a policy error at check time, never a caller hung up at the PIN prompt.
    """
    m = _FORMAT.match(pin_hash)
    if not m:
        return None
    n, r, p = (int(g) for g in m.groups()[:3])
    if n < 2 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16:
        return None
    if 128 * r * (n + p + 2) > _MAXMEM:  # scrypt's own memory estimate
        return None
    try:
        salt = base64.b64decode(m.group(4), validate=True)
        digest = base64.b64decode(m.group(5), validate=True)
    except binascii.Error:
        return None
    if len(salt) < 8 or len(digest) < 16:
        return None
    return n, r, p, salt, digest


def is_pin_hash(value: str) -> bool:
    return _parse(value) is not None


def cost_of(pin_hash: str | None) -> int | None:
    """The N a valid hash carries, else None."""
    parsed = _parse(pin_hash or "")
    return parsed[0] if parsed is not None else None


def verify_pin(pin_hash: str | None, pin: str) -> bool:
    """Constant-time check; False for a missing or malformed hash, never an exception."""
    parsed = _parse(pin_hash or "")
    if parsed is None or not pin.isdigit() or len(pin) > 12:
        return False
    n, r, p, salt, expected = parsed
    try:
        digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected),
                                maxmem=_MAXMEM)
    except (ValueError, MemoryError):
        return False
    return hmac.compare_digest(digest, expected)


def usual_cost(hashes: Iterable[str | None]) -> int:
    """The N most of `hashes` carry (:data:`N` when none is valid): what a refusal must cost
    so that it takes as long as a known user's wrong PIN."""
    counts = collections.Counter(n for n in map(cost_of, hashes) if n is not None)
    return counts.most_common(1)[0][0] if counts else N


@functools.lru_cache(maxsize=8)
def decoy_hash(n: int = N) -> str:
    """A hash at cost `n` that no PIN typed is known to match (made once per cost)."""
    return hash_pin(f"{secrets.randbelow(10 ** 12):012d}", n=n)


def check_user_pin(policy: Policy, user_id: str | None, pin: str) -> bool:
    """Whether `pin` is `user_id`'s PIN in `policy`. Blocking (scrypt): call it through
    :func:`check_user_pin_off_loop`.

    An unknown user, a user without a PIN, or something typed that is not a PIN
    costs one scrypt of the policy's usual cost on a decoy, so a refusal takes as
    long as a wrong PIN and tells nothing about who exists.
    """
    user = policy.users.get(user_id) if user_id else None
    pin_hash = user.pin_hash if user is not None else None
    if user is None or not is_pin_hash(pin_hash or "") or not pin.isdigit() or len(pin) > 12:
        cost = usual_cost(u.pin_hash for u in policy.users.values())
        verify_pin(decoy_hash(cost), pin if pin.isdigit() and len(pin) <= 12 else "0000")
        return False
    return verify_pin(pin_hash, pin)


async def check_user_pin_off_loop(policy: Policy, user_id: str | None, pin: str) -> bool:
    """:func:`check_user_pin` on the PIN threads (:data:`CHECK_THREADS`), waited for here."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_check_pool(), check_user_pin, policy, user_id, pin)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _check_pool() -> ThreadPoolExecutor:
    """The process's PIN threads, made on first use; one pool for every PIN prompt
    (greeting, mailbox), as one lockout counts for all of them."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="mailcall-pin",
                                       initializer=_lower_priority)
        return _pool


def _lower_priority() -> None:
    """Run this thread's PIN checks after the process's other work on a busy CPU."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid)
                                                 + CHECK_NICENESS))
    except (AttributeError, OSError) as exc:  # not Linux: same priority, still bounded
        log.debug("PIN check thread keeps its priority: %s", exc)
