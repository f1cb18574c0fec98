"""The keys of the fixed sections and how each value is read: [telephony], [mail],
[server], [delivery] and the keys every [channels] medium shares.

One table per section maps a key to its parser; a parser returns the value, or
records the problem with the :class:`Checker` and returns None, so one pass finds
every mistake. The rules that only make sense for one key (a Dial() template, an
AGI directory, HOST:PORT) live here rather than among the general checks of
value_checks.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mailcall.core.policy.value_checks import Checker, Path

Parser = Callable[[Checker, Any, Path], Any]
"""A key's reader: the value converted, or None once the problem is recorded."""


def _template(field: str):
    def one(check: Checker, v: Any, p: Path) -> str | None:
        s = check.string(v, p)
        if s is not None and "{" + field + "}" not in s:
            check.error(p, f"must contain {{{field}}}, where mailcall puts the {field}")
            return None
        if s is not None and any(c in s for c in "\"\\,|&;\n"):
            check.error(p, "must not contain quotes, backslashes, commas, '|', '&' or ';': "
                           "mailcall builds the Dial() argument from it")
            return None
        return s
    return one


def _int(low: int, high: int):
    return lambda check, v, p: check.integer(v, p, low, high)


def _choice(*options: str):
    return lambda check, v, p: check.choice(v, p, options)


def _str(check: Checker, v: Any, p: Path) -> str | None:
    return check.string(v, p)


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` into a (host, port) pair, with a clear error.

    The one reader of ``agi_listen``, for the policy check and for ``mailcall serve``
    (which also takes ``--agi-listen``, and port 0: any free port, for tests)."""
    text = str(value).strip()
    host, sep, port = text.rpartition(":")
    # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "٤" (which
    # int() reads as 4, leaving a port the socket layer never sees written that way).
    if not sep or not (port.isascii() and port.isdigit()) or not host:
        raise ValueError(
            f"agi_listen {value!r} is not HOST:PORT (e.g. 127.0.0.1:4573); "
            "fix [server] agi_listen in the policy or --agi-listen"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError(f"agi_listen {value!r}: port {number} is out of range 0-65535")
    return host, number


def _listen(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    if s is None:
        return None
    try:
        _host, port = parse_listen(s)
    except ValueError:
        port = 0
    if port == 0:  # a policy names the port Asterisk dials: not "any free port"
        check.error(p, f"'{s}' is not HOST:PORT, e.g. 127.0.0.1:4573")
        return None
    return s


def _address(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    if s is None:
        return None
    if s.startswith("unix:"):
        if not s[5:].startswith("/"):
            check.error(p, f"'{s}': a UNIX socket must be an absolute path, "
                           "e.g. unix:/run/dovecot/lmtp")
            return None
        return s
    return _listen(check, s, p)


def _sender_address(check: Checker, v: Any, p: Path) -> str | None:
    if v == "":
        return ""
    return check.email(v, p)


_RELAY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


def _relay(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    if s is None:
        return None
    match = _RELAY.fullmatch(s)
    if match is None or not 0 < int(match.group(1)) < 65536:
        check.error(p, f"'{s}' is not HOST:PORT of an SMTP server, e.g. 127.0.0.1:25 (the "
                       "local MTA) or [::1]:25; it takes the mail mailcall sends out "
                       "(SMS-gateway mails, e-mail notices)")
        return None
    return s


def url_value(check: Checker, v: Any, p: Path) -> str | None:
    """An http:// or https:// URL (also the kind ``url`` of a key a plugin declares)."""
    s = check.string(v, p)
    if s is not None and not s.startswith(("http://", "https://")):
        check.error(p, f"'{s}' must be an http:// or https:// URL")
        return None
    return s


def _line_limit(check: Checker, v: Any, p: Path) -> int | None:
    if type(v) is not int or v not in (2048, 8192):
        check.error(p, f"must be 2048 (Asterisk before 20.16, 21.11, 22.6) or 8192, not {v!r}")
        return None
    return v


def agi_path_problem(value: str) -> str | None:
    """Why `value` cannot be a directory Asterisk records into or plays from, or None."""
    if not value.startswith("/"):
        return "must be an absolute path"
    if any(c.isspace() or c in "\"'\\" for c in value):
        return ("must not contain spaces, quotes or backslashes: Asterisk's AGI takes file "
                "names as single words")
    return None


def _agi_dir(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    problem = agi_path_problem(s) if s is not None else None
    if problem:
        check.error(p, f"'{s}' {problem}")
        return None
    return s


TELEPHONY_KEYS: dict[str, Parser] = {
    "endpoint": _template("extension"), "external": _template("number"),
    "ring_time": _int(5, 300), "max_steps": _int(1, 32)}
MAIL_KEYS: dict[str, Parser] = {
    "voice_folder": _str, "fax_folder": _str, "auto_reply_days": _int(1, 30)}
SERVER_KEYS: dict[str, Parser] = {
    "agi_listen": _listen, "spool_dir": _agi_dir, "greetings_dir": _agi_dir,
    "sieve_socket": _str, "max_agi_sessions": _int(1, 100000), "agi_line_limit": _line_limit}
DELIVERY_KEYS: dict[str, Parser] = {
    "method": _choice("lmtp", "smtp"), "address": _address, "sender": _sender_address}
SHARED_CHANNEL_KEYS: dict[str, Parser] = {"rate_limit_per_hour": _int(1, 10000), "relay": _relay}
"""The [channels] keys every medium shares; each medium's own come from its declaration."""


def read_section(check: Checker, value: Any, path: Path, defaults: dict[str, Any],
                 fields: dict[str, Parser], cls: type) -> Any:
    """Section `path` read with its key table `fields`, unset keys from `defaults`."""
    t = check.table(value, path, fields)
    out = {}
    for key, conv in fields.items():
        if key in t:
            got = conv(check, t[key], (*path, key))
            if got is not None:
                out[key] = got
        elif key in defaults:
            out[key] = defaults[key]
    return cls(**out)
