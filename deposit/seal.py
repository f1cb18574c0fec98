"""The deposit key: what lets mailcall prove that a voicemail or fax is its own.

Anyone can send mail with ``Message-Context: voice-message``, mailcall's envelope
sender and a Message-ID of their choosing. So nothing that decides where a
deposit is filed, or whether a copy is dropped as a duplicate, may rest on
those. Instead every deposit carries a token only the holder of this key can
write: ``Mailcall-Deposit: v2.<unix seconds>.<HMAC-SHA256, base64url>`` over its
Message-ID, recipient, context and the time it was made. Dovecot's Sieve script
passes the header to the bridge, which recomputes it (:func:`delivery_problem`);
the same key makes Message-IDs unguessable, so a forger cannot even name the
voicemail to come.

Why the time: a genuine deposit's raw bytes can leak (forwarded as an
attachment, a shared mailbox). Its token stays valid, so a copy with any other
body could be replayed to the same user. Dovecot's ``duplicate`` test drops
such a copy only while it remembers the Message-ID, so a token is accepted for
delivery only :data:`DEPOSIT_WINDOW` seconds after it was made, and the
generated script asks ``duplicate :seconds`` for the same window: a replay is
either a duplicate (dropped: the real one is filed) or too old (Quarantine).
A deposit waiting in the spool longer than :data:`RESEAL_AFTER` is rebuilt
before its next attempt (:func:`needs_resealing`), so a fresh token goes out
with it. ``v1`` tokens (no time) are never accepted for delivery.

The key is 32 random bytes, written as hex to ``<spool_dir>/deposit.key``
(mode 0600, mailcall's user) the first time anyone needs it. It lives in the
spool because the spool's built messages carry tokens made with it: key and
sealed messages travel together, and the spool is the one directory every
part of ``mailcall serve`` (bridge, delivery process, build processes)
already reaches. The key is read at each use, never cached across a
replacement, and never logged.
"""

from __future__ import annotations

import base64
import hmac
import os
import re
import secrets
import stat
import time
from hashlib import sha256
from pathlib import Path

KEY_FILE = "deposit.key"
SEAL_HEADER = "Mailcall-Deposit"
"""The header a deposit's token travels in (checked by the bridge's ``deposit`` verb)."""
_VERSION = "v2"
DEPOSIT_WINDOW = 86400
"""Seconds a token is accepted for delivery after it was made, and the ``duplicate
:seconds`` of the generated script: the two must be equal (see the module docstring).
At most Pigeonhole's ``sieve_duplicate_max_period`` (2 days by default)."""
CLOCK_SKEW = 300
"""Seconds a token may be dated in the future (the build process's clock ahead)."""
RESEAL_AFTER = DEPOSIT_WINDOW // 2
"""A built message older than this is rebuilt (a fresh token) before it is sent again:
half the window, so a retry (at most ``retry_max`` later) still goes out in time."""
_HEX_KEY = re.compile(rb"^[0-9a-f]{64}\n?$")


class DepositKeyError(Exception):
    """The key file cannot be created or is not safe to use; the message says what to do."""


def key_path(spool_dir: str | os.PathLike[str]) -> Path:
    return Path(spool_dir) / KEY_FILE


def deposit_key(spool_dir: str | os.PathLike[str]) -> bytes:
    """The key of the spool at `spool_dir`, created (0600) if it does not exist yet.

    Creation is race-free between processes: the key is written and fsynced
    under a temporary name, then hard-linked into place; whoever links second
    reads the winner's key.
    """
    path = key_path(spool_dir)
    try:
        return _read(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        # A random name: unique across processes *and* threads; removed whatever happens.
        tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(8)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        try:
            try:
                os.write(fd, secrets.token_hex(32).encode() + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process or thread created it first: use that one
        finally:
            tmp.unlink(missing_ok=True)
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise DepositKeyError(
            f"cannot create the deposit key {path}: {exc.strerror or exc}; the directory "
            f"{path.parent} ([server] spool_dir) must exist and be writable by the user "
            "mailcall runs as (docs/dovecot.md, 'Deposits are authenticated')") from None
    return _read(path)


def existing_deposit_key(spool_dir: str | os.PathLike[str]) -> bytes:
    """The key of the spool at `spool_dir`, never created here.

    For readers that judge deposits already in a mailbox (the lamp's counts): a key
    created at that point would prove none of them, and every lamp would go dark
    with a made-up 0/0. A missing key is an error they report instead.
    """
    path = key_path(spool_dir)
    try:
        return _read(path)
    except FileNotFoundError:
        raise DepositKeyError(
            f"the deposit key {path} is missing ([server] spool_dir): without it no "
            "voicemail in a mailbox can be proven mailcall's. Restore it from a backup, or "
            "restart mailcall serve to write a new one (older deposits then no longer "
            "count)") from None


def _read(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise DepositKeyError(
            f"cannot read the deposit key {path}: {exc.strerror or exc}; {path.parent} "
            "([server] spool_dir) must be a directory of the user mailcall runs as, and the "
            "key in it a regular file of that user, not a link") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise DepositKeyError(
                f"the deposit key {path} is not a regular file owned by this user "
                f"(uid {os.geteuid()}): remove it and restart mailcall, which writes a new one")
        if info.st_mode & 0o077:
            raise DepositKeyError(
                f"the deposit key {path} is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): anyone who reads it can forge voicemail. "
                f"Remove it and restart mailcall, which writes a new one (mode 0600)")
        data = os.read(fd, 128)
    finally:
        os.close(fd)
    if not _HEX_KEY.match(data):
        raise DepositKeyError(
            f"the deposit key {path} is damaged (expected 64 hex digits): remove it and restart "
            "mailcall, which writes a new one (deposits waiting in the spool then reach "
            "Quarantine instead of Voicemail/Fax)")
    return bytes.fromhex(data.strip().decode())


def _mac(key: bytes, purpose: bytes, *parts: str) -> str:
    data = b"\0".join([purpose, *(p.encode("utf-8", errors="surrogatepass") for p in parts)])
    return hmac.new(key, data, sha256).hexdigest()


def id_digest(key: bytes, kind: str, mailbox: str, call_id: str) -> str:
    """The keyed part of a deposit's Message-ID: stable per call, unguessable without the key.

    100 bits in 20 lower-case base32 characters: as long as the unkeyed hash it replaces, so
    the Message-ID header still fits on one line (a folded one reads back with a leading
    space in some parsers, Python's among them)."""
    mac = bytes.fromhex(_mac(key, b"mailcall-message-id-v1", kind, mailbox, call_id))
    return base64.b32encode(mac).decode().lower()[:20]


def _normal(message_id: str, recipient: str, context: str) -> tuple[str, str, str]:
    return message_id.strip(), recipient.strip().lower(), context.strip().lower()


def _b64(mac_hex: str) -> str:
    return base64.urlsafe_b64encode(bytes.fromhex(mac_hex)).rstrip(b"=").decode()


def _v1(key: bytes, message_id: str, recipient: str, context: str) -> str:
    return "v1." + _b64(_mac(key, b"mailcall-deposit-v1", *_normal(message_id, recipient, context)))


def _v2(key: bytes, made: int, message_id: str, recipient: str, context: str) -> str:
    mac = _mac(key, b"mailcall-deposit-v2", str(made), *_normal(message_id, recipient, context))
    return f"{_VERSION}.{made}.{_b64(mac)}"


def deposit_token(key: bytes, message_id: str, recipient: str, context: str, *,
                  at: float | None = None) -> str:
    """The ``Mailcall-Deposit`` value of a deposit to `recipient` (its envelope address), made
    at `at` (Unix time, default now): ``v2.<seconds>.`` and the 256-bit MAC in unpadded
    base64url, so the header fits on one line."""
    made = int(time.time() if at is None else at)
    return _v2(key, made, message_id, recipient, context)


_V2 = re.compile(r"^v2\.([0-9]{1,12})\.[A-Za-z0-9_-]{43}$")


def token_valid(key: bytes, token: str, message_id: str, recipient: str, context: str) -> bool:
    """True when `token` is one mailcall wrote for this Message-ID, recipient and context, at
    any time (``v1`` or ``v2``). For messages already filed (the MWI count); a delivery is
    checked with :func:`delivery_problem`, which also wants the token fresh."""
    token = token.strip()
    match = _V2.match(token)
    if match:
        expected = _v2(key, int(match.group(1)), message_id, recipient, context)
    elif token.startswith("v1."):
        expected = _v1(key, message_id, recipient, context)
    else:
        return False
    return hmac.compare_digest(token.encode("utf-8", errors="replace"), expected.encode())


def delivery_problem(key: bytes, token: str, message_id: str, recipient: str, context: str, *,
                     now: float | None = None, key_name: str = "mailcall's") -> str | None:
    """None when `token` proves a deposit being delivered now; else why not (for the log;
    `key_name` says which key file the token was checked with)."""
    token = token.strip()
    if token.startswith("v1."):
        return ("its Mailcall-Deposit token is of the old form v1 (no time, so replayable): "
                "built before mailcall was upgraded")
    if not _V2.match(token) or not token_valid(key, token, message_id, recipient, context):
        return ("its Mailcall-Deposit token is not the one mailcall wrote for this Message-ID "
                "and recipient (forged, copied from another message, or made with another key "
                f"than {key_name})")
    made = int(token.split(".")[1])
    now = time.time() if now is None else now
    if made > now + CLOCK_SKEW:
        return (f"its Mailcall-Deposit token is dated {int(made - now)} s in the future "
                "(check the clock of this host)")
    if now - made > DEPOSIT_WINDOW:
        return (f"its Mailcall-Deposit token was made {int(now - made)} s ago, more than the "
                f"{DEPOSIT_WINDOW} s a deposit may take (a replayed copy of a genuine one)")
    return None


def needs_resealing(message: str | os.PathLike[str], *, now: float | None = None) -> bool:
    """True when the built message at `message` is older than :data:`RESEAL_AFTER`: rebuild
    it before sending, or its token may be too old by the time Dovecot checks it."""
    try:
        built = os.stat(message).st_mtime
    except FileNotFoundError:
        return True
    return (time.time() if now is None else now) - built > RESEAL_AFTER
