"""web.toml: where the page listens, how cookies are sent, who the admins are, the IMAP server.

Kept beside the policy (like mwi.toml and phone-menu.toml) rather than in it:
the listening address and the IMAP server are the serving machine's business.
Read from ``$MAILCALL_WEB_CONFIG``, else ``web.toml`` beside the policy; when
neither exists the page is off (``mailcall serve`` says so once). Every
problem names the file, the table and the key.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailcall.core.host.service_files import settings_file
from mailcall.imap import is_loopback

ENV = "MAILCALL_WEB_CONFIG"


class WebConfigError(Exception):
    """web.toml cannot be used; the message names the file, table and key."""


@dataclass(frozen=True, slots=True)
class LoginImap:
    """The IMAP server the employees' passwords are checked against (an IMAP LOGIN)."""

    host: str = "127.0.0.1"
    port: int = 143
    security: str = "none"
    """"none" (loopback only: the password would travel in clear), "starttls", "tls"."""
    login: str = "email"
    """The IMAP user name of a user: "email" (the policy's address) or "id"."""
    timeout: float = 10.0

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class WebSettings:
    path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8480
    secure_cookies: bool = True
    """Cookies marked Secure (the proxy speaks HTTPS). Off only for a loopback test setup."""
    admins: tuple[str, ...] = ()
    """Policy user ids who see IT's view (every user's refinements, the audit log)."""
    session_idle: float = 30 * 60.0
    session_max: float = 12 * 3600.0
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    """Peers whose X-Forwarded-For is believed (for the per-address login limit)."""
    imap: LoginImap = field(default_factory=LoginImap)


def config_path(policy_path: Path | None) -> Path | None:
    """The web.toml to use, or None when the page is not configured."""
    return settings_file(policy_path, "web.toml", ENV)


_WEB_KEYS = ("host", "port", "secure_cookies", "admins", "session_idle", "session_max",
             "trusted_proxies")
_IMAP_KEYS = ("host", "port", "security", "login", "timeout")


def load(path: Path, *, users: Any = None) -> WebSettings:
    """Read `path`; `users` (the policy's users) lets unknown admin ids be refused."""
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise WebConfigError(f"{path}: no such file ({ENV} or web.toml beside the policy)") \
            from None
    except OSError as exc:
        raise WebConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise WebConfigError(f"{path}: not valid TOML: {exc}") from None

    def fail(key: str, message: str) -> None:
        table, _, name = key.partition(".")
        raise WebConfigError(f"{path}: [{table}] {name}: {message}")

    unknown = set(data) - {"web", "imap"}
    if unknown:
        raise WebConfigError(f"{path}: unknown table(s) {sorted(unknown)}: expected [web], "
                             "[imap]")
    web, imap = data.get("web", {}), data.get("imap", {})
    for name, table, keys in (("web", web, _WEB_KEYS), ("imap", imap, _IMAP_KEYS)):
        if not isinstance(table, dict):
            raise WebConfigError(f"{path}: [{name}] must be a table")
        extra = sorted(set(table) - set(keys))
        if extra:
            fail(f"{name}.{extra[0]}", f"unknown key (known: {', '.join(keys)})")

    def host(key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value):
            fail(key, f"{value!r} is not a host name or address")
        return value.strip()

    def port(key: str, value: Any) -> int:
        if type(value) is not int or not 1 <= value <= 65535:
            fail(key, f"must be a port number 1-65535, not {value!r}")
        return value

    def number(key: str, value: Any, low: float, high: float) -> float:
        if type(value) not in (int, float) or not low <= value <= high:
            fail(key, f"must be a number of seconds {low:g}-{high:g}, not {value!r}")
        return float(value)

    def names(key: str, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            fail(key, f"must be a list of strings, not {value!r}")
        return tuple(value)

    out = WebSettings(path=path)
    if "host" in web:
        out = replace(out, host=host("web.host", web["host"]))
    if "port" in web:
        out = replace(out, port=port("web.port", web["port"]))
    if "secure_cookies" in web:
        if not isinstance(web["secure_cookies"], bool):
            fail("web.secure_cookies", f"must be true or false, not {web['secure_cookies']!r}")
        out = replace(out, secure_cookies=web["secure_cookies"])
    if "admins" in web:
        admins = names("web.admins", web["admins"])
        missing = [a for a in admins if users is not None and a not in users]
        if missing:
            fail("web.admins", f"{', '.join(map(repr, missing))} not a user of the policy "
                 "file: admins are named by their user id")
        out = replace(out, admins=admins)
    if "session_idle" in web:
        out = replace(out, session_idle=number("web.session_idle", web["session_idle"],
                                               60, 86400))
    if "session_max" in web:
        out = replace(out, session_max=number("web.session_max", web["session_max"],
                                              300, 7 * 86400))
    if "trusted_proxies" in web:
        out = replace(out, trusted_proxies=names("web.trusted_proxies",
                                                 web["trusted_proxies"]))
    if not out.secure_cookies and not is_loopback(out.host):
        fail("web.secure_cookies", f"false sends the session cookie over plain HTTP; allowed "
             f"only when the page listens on loopback (host = {out.host!r})")

    im = LoginImap()
    if "host" in imap:
        im = replace(im, host=host("imap.host", imap["host"]))
    if "port" in imap:
        im = replace(im, port=port("imap.port", imap["port"]))
    for key, options in (("security", ("none", "starttls", "tls")), ("login", ("email", "id"))):
        if key in imap:
            if imap[key] not in options:
                fail(f"imap.{key}", f"must be one of {', '.join(options)}, not {imap[key]!r}")
            im = replace(im, **{key: imap[key]})
    if "timeout" in imap:
        im = replace(im, timeout=number("imap.timeout", imap["timeout"], 0.5, 120))
    if im.security == "none" and not is_loopback(im.host):
        fail("imap.security", f"'none' sends the employees' passwords in clear to {im.host}: "
             "use 'starttls' or 'tls', or an IMAP server on loopback")
    return replace(out, imap=im)

