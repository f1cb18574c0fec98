"""What the mailbox writes to IMAP and reads back beyond what imaplib does for it.

Folder names in modified UTF-7 (RFC 3501 §5.1.3), UID sets in ranges, the
LIST line that names the Trash (RFC 6154), a refusal for want of rights
(``[NOPERM]``): pure functions of their arguments, kept apart from the
connection (:mod:`mailcall.mailstore.mailbox`) that sends and reads them.
"""

from __future__ import annotations

from imapclient import imap_utf7
from imapclient.response_parser import parse_response

from mailcall.imap import quote


def folder_arg(name: str) -> str:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 §5.1.3), quoted."""
    return quote(imap_utf7.encode(name).decode("ascii"))


def uid_set(uids: list[int]) -> str:
    """Compact ranges (1:40,45): thousands of messages stay one short command."""
    ordered = sorted(set(uids))
    out: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        out.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    out.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(out)


def trash_name(line: object) -> str | None:
    try:
        flags, _delimiter, name = parse_response([line])
    except Exception:  # an answer we cannot read is not the Trash
        return None
    if not any(isinstance(f, bytes) and f.lower() == b"\\trash" for f in flags or ()):
        return None
    raw = name if isinstance(name, bytes) else str(name).encode()
    return imap_utf7.decode(raw)


def no_permission(data: list) -> bool:
    return b"[NOPERM]" in b" ".join(d for d in data if isinstance(d, bytes)).upper()
