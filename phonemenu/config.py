"""phone-menu.toml: how the phone menu reaches the users' mailboxes over IMAP.

Kept out of the policy for the reason mwi.toml is: it names a password file
and a server only the machine running ``mailcall serve`` needs. Read from
``$MAILCALL_PHONE_MENU_CONFIG``, else ``phone-menu.toml`` beside the policy
file; without either, the defaults of
:class:`mailcall.mailstore.MailstoreSettings` are used (Dovecot on
127.0.0.1:143, master user ``mailcall-phone``, password in
``/etc/mailcall/imap-phone.secret``), with the policy's ``[mail]
voice_folder``. Every problem names the file and the key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any

from mailcall.core.host.service_files import settings_file

ENV = "MAILCALL_PHONE_MENU_CONFIG"
FILE = "phone-menu.toml"


class PhoneMenuConfigError(Exception):
    """phone-menu.toml cannot be used; the message says where and what to do."""


def config_path(policy_path: Path | None) -> Path | None:
    """The phone-menu.toml to use, or None (defaults)."""
    return settings_file(policy_path, FILE, ENV)


def mailstore_settings(settings_type: type, policy: Any, path: Path | None) -> Any:
    """`settings_type` (MailstoreSettings) from the ``[mailstore]`` table of `path`."""
    values: dict[str, Any] = {"voice_folder": policy.mail.voice_folder}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            raise PhoneMenuConfigError(f"{path}: no such file (named by ${ENV}); create it "
                                       "or unset the variable (docs/phone-menu.md)") from None
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PhoneMenuConfigError(f"{path}: cannot be read as TOML: {exc}") from None
        unknown_tables = sorted(set(data) - {"mailstore"})
        if unknown_tables:
            raise PhoneMenuConfigError(f"{path}: unknown table(s) {unknown_tables}; only "
                                       "[mailstore] is read (docs/phone-menu.md)")
        table = data.get("mailstore", {})
        known = {f.name: f for f in dataclasses.fields(settings_type)}
        for key, value in table.items():
            field = known.get(key)
            if field is None:
                raise PhoneMenuConfigError(f"{path}: [mailstore] {key}: unknown key; known: "
                                           f"{', '.join(sorted(known))}")
            values[key] = value
    try:
        return settings_type(**values)
    except (TypeError, ValueError) as exc:
        raise PhoneMenuConfigError(f"{path or 'phone menu defaults'}: [mailstore]: {exc}") \
            from None
