"""The AMI secret, read from a file at each login and never kept in a printable object.

Why a file: a secret on the command line shows in ``ps``, one in the policy is
copied into backups and bug reports. The file is read again at every
connection, so rotating the secret in manager.conf and in the file needs no
restart of mailcall.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_SECRET = 512


class CredentialsError(Exception):
    """The secret file cannot be used; the message names the file and what to do."""


class Secret:
    """A secret value whose repr and str never show it (so no log line can)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


def read_secret(path: str | os.PathLike[str]) -> tuple[Secret, list[str]]:
    """The secret in `path` (first line, without its line end) and warnings about the file."""
    p = Path(path)
    warnings: list[str] = []
    try:
        st = p.stat()
        with p.open("rb") as f:
            raw = f.read(64 * 1024)  # bounded; decoded whole, so a long secret is refused
            # below, never cut in the middle of a character
    except FileNotFoundError:
        raise CredentialsError(
            f"secret file {p} does not exist: write the AMI user's secret from manager.conf "
            f"into it (chmod 0640, group mailcall)") from None
    except OSError as exc:
        raise CredentialsError(f"cannot read secret file {p}: {exc.strerror}; check its "
                               f"owner and mode (0640, readable by mailcall)") from None
    if st.st_mode & stat.S_IROTH:
        warnings.append(f"secret file {p} is readable by every local user: chmod o-r {p}")
    try:
        value = raw.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise CredentialsError(f"secret file {p}: its first line is not UTF-8 text") from None
    if not value:
        raise CredentialsError(f"secret file {p} is empty (its first line is the secret)")
    if len(value) > MAX_SECRET or any(c in value for c in "\0\r"):
        raise CredentialsError(f"secret file {p}: the first line is not a usable secret "
                               f"(at most {MAX_SECRET} characters, no control characters)")
    return Secret(value), warnings
