"""web.toml: where the page listens, how cookies are sent, who the admins are, the IMAP server.

Kept beside the policy (like mwi.toml and phone-menu.toml) rather than in it:
the listening address and the IMAP server are the serving machine's business.
Read from ``$MAILCALL_WEB_CONFIG``, else ``web.toml`` beside the policy; when
neither exists the page is off (``mailcall serve`` says so once). Every
problem names the file, the line, the table and the key
(:mod:`mailcall.core.host.settings_check`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mailcall.core.host.service_files import settings_file
from mailcall.core.host.settings_check import SettingsFile
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
class ClientSieve:
    """The ManageSieve server the page reads the mail client's out-of-office from, at login,
    as the user with the password just typed (docs/web.md, "Out-of-office of the mail
    client"). `host` None: the [imap] host; `security` None: "none" on loopback, else
    "starttls"."""

    enabled: bool = True
    host: str | None = None
    port: int = 4190
    security: str | None = None
    timeout: float = 5.0

    def resolved(self, imap: LoginImap) -> ClientSieve:
        host = self.host or imap.host
        security = self.security or ("none" if is_loopback(host) else "starttls")
        return replace(self, host=host, security=security)


@dataclass(frozen=True, slots=True)
class WebSettings:
    path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8480
    secure_cookies: bool = True
    """Cookies marked Secure (the proxy speaks HTTPS). Off only for a loopback test setup."""
    admins: tuple[str, ...] = ()
    """Policy user ids who see IT's view (every user's refinements, the audit log), kept
    for compatibility: the policy's ``[organisation] admins`` is the place (see is_admin)."""
    session_idle: float = 30 * 60.0
    session_max: float = 12 * 3600.0
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    """Peers whose X-Forwarded-For is believed (for the per-address login limit)."""
    imap: LoginImap = field(default_factory=LoginImap)
    managesieve: ClientSieve = field(default_factory=ClientSieve)

    def is_admin(self, user_id: str | None, policy: Any) -> bool:
        """Whether `user_id` sees IT's view: named by the policy in force (so a reload
        adds or removes one at once) or by web.toml's older ``admins``."""
        return user_id is not None and (user_id in policy.admins or user_id in self.admins)


def config_path(policy_path: Path | None) -> Path | None:
    """The web.toml to use, or None when the page is not configured."""
    return settings_file(policy_path, "web.toml", ENV)


def load(path: Path, *, users: Any = None) -> WebSettings:
    """Read `path`; `users` (the policy's users) lets unknown admin ids be refused."""
    check, data = SettingsFile.read(path, WebConfigError,
                                    missing=f"${ENV} or web.toml beside the policy")
    check.tables(data, ("web", "imap", "managesieve"))
    seconds = "seconds"
    out = check.table(data, "web", WebSettings(path=path), {
        "host": check.host, "port": check.port, "secure_cookies": check.boolean,
        "admins": check.names, "session_idle": check.number(60, 86400, seconds),
        "session_max": check.number(300, 7 * 86400, seconds),
        "trusted_proxies": check.names})
    missing = [a for a in out.admins if users is not None and a not in users]
    if missing:
        check.fail("web.admins", f"{', '.join(map(repr, missing))} not a user of the policy "
                   "file: admins are named by their user id")
    if not out.secure_cookies and not is_loopback(out.host):
        check.fail("web.secure_cookies", f"false sends the session cookie over plain HTTP; "
                   f"allowed only when the page listens on loopback (host = {out.host!r})")
    im = check.table(data, "imap", LoginImap(), {
        "host": check.host, "port": check.port,
        "security": check.choice("none", "starttls", "tls"),
        "login": check.choice("email", "id"), "timeout": check.number(0.5, 120, seconds)})
    if im.security == "none" and not is_loopback(im.host):
        check.fail("imap.security", f"'none' sends the employees' passwords in clear to "
                   f"{im.host}: use 'starttls' or 'tls', or an IMAP server on loopback")
    ms = check.table(data, "managesieve", ClientSieve(), {
        "enabled": check.boolean, "host": check.host, "port": check.port,
        "security": check.choice("none", "starttls"),
        "timeout": check.number(0.5, 60, seconds)}).resolved(im)
    if ms.enabled and ms.security == "none" and not is_loopback(ms.host or ""):
        check.fail("managesieve.security", f"'none' sends the employees' passwords in clear "
                   f"to {ms.host}: use 'starttls', or a ManageSieve server on loopback")
    return replace(out, imap=im, managesieve=ms)
