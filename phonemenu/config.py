"""phone-menu.toml: how the phone menu reaches the users' mailboxes over IMAP.

Kept out of the policy for the reason mwi.toml is: it names a password file
and a server only the machine running ``mailcall serve`` needs. Read from
``$MAILCALL_PHONE_MENU_CONFIG``, else ``phone-menu.toml`` beside the policy
file; without either, the defaults of
:class:`mailcall.mailstore.MailstoreSettings` are used (Dovecot on
127.0.0.1:143, master user ``mailcall-phone``, password in
``/etc/mailcall/imap-phone.secret``), with the policy's ``[mail]
voice_folder``. Every problem names the file, the line and the key
(:mod:`mailcall.core.host.settings_check`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from mailcall.core.host.service_files import settings_file
from mailcall.core.host.settings_check import SettingsFile

ENV = "MAILCALL_PHONE_MENU_CONFIG"
FILE = "phone-menu.toml"


class PhoneMenuConfigError(Exception):
    """phone-menu.toml cannot be used; the message says where and what to do."""


def config_path(policy_path: Path | None) -> Path | None:
    """The phone-menu.toml to use, or None (defaults)."""
    return settings_file(policy_path, FILE, ENV)


def mailstore_settings(settings_type: type, policy: Any, path: Path | None) -> Any:
    """`settings_type` (MailstoreSettings) from the ``[mailstore]`` table of `path`.

    The keys are checked here (file, line, key); their values by `settings_type` itself.
    """
    values: dict[str, Any] = {"voice_folder": policy.mail.voice_folder}
    check: SettingsFile | None = None
    if path is not None:
        check, data = SettingsFile.read(
            path, PhoneMenuConfigError,
            missing=f"named by ${ENV}; create it or unset the variable (docs/phone-menu.md)")
        check.tables(data, ("mailstore",))
        known = sorted(f.name for f in dataclasses.fields(settings_type))
        values.update(check.keys(data, "mailstore", known))
    try:
        return settings_type(**values)
    except (TypeError, ValueError) as exc:
        if check is None:
            raise PhoneMenuConfigError(f"phone menu defaults: [mailstore]: {exc}") from None
        check.fail("mailstore", str(exc))
