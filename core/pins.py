"""Phone PINs, stored only as salted scrypt hashes.

The policy file is read by several people and copied into backups; a PIN
written in it in clear would be a PIN known to all of them.
"""

from __future__ import annotations

import base64
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


def is_pin_hash(value: str) -> bool:
    return bool(_FORMAT.match(value))


def verify_pin(pin_hash: str | None, pin: str) -> bool:
    """Constant-time check; False for a missing or malformed hash."""
    m = _FORMAT.match(pin_hash or "")
    if not m or not pin.isdigit() or len(pin) > 12:
        return False
    n, r, p = (int(g) for g in m.groups()[:3])
    if n > 2**20 or r > 32 or p > 16:
        return False
    salt, expected = base64.b64decode(m.group(4)), base64.b64decode(m.group(5))
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected),
                            maxmem=2**27)
    return hmac.compare_digest(digest, expected)
