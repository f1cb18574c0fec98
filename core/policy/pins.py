"""Phone PINs, stored only as salted scrypt hashes.

The policy file is read by several people and copied into backups; a PIN
written in it in clear would be a PIN known to all of them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets

_FORMAT = re.compile(r"^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$")
_N, _R, _P = 2**14, 8, 1


def hash_pin(pin: str) -> str:
    if not pin.isdigit() or not 4 <= len(pin) <= 12:
        raise ValueError("a PIN is 4 to 12 digits")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


_MAXMEM = 2**27


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
