"""mwi.toml, web.toml and phone-menu.toml are checked by one checker
(core/host/settings_check.py): every mistake names the file, the line, the table and the
key, as policy problems do. Each file had its own checker before, none gave the line,
and phone-menu.toml with ``mailstore = 3`` failed with an AttributeError."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcall.core.policy.load import load_policy
from mailcall.mailstore import MailstoreSettings
from mailcall.mwi.config import MwiConfigError
from mailcall.mwi.config import load as load_mwi
from mailcall.phonemenu.config import PhoneMenuConfigError, mailstore_settings
from mailcall.web.config import WebConfigError
from mailcall.web.config import load as load_web
from tests.support import EXAMPLE_POLICY


def _phone(path: Path) -> object:
    return mailstore_settings(MailstoreSettings, load_policy(EXAMPLE_POLICY), path)


CASES = [
    ("mwi.toml", load_mwi, MwiConfigError,
     '[ami]\nhost = "127.0.0.1"\n\n[imap]\nfolder = "Voix"\nport = 0\n',
     ":6: [imap] port: must be a port number 1-65535, not 0"),
    ("mwi.toml", load_mwi, MwiConfigError,
     '[ami]\nport = 5038\n[lamps]\nmailbox = "x"\n',
     ":3: [lamps]: unknown table (tables: [ami], [imap], [lamp])"),
    ("mwi.toml", load_mwi, MwiConfigError, '[ami]\nport = 5038\nport = 1\n',
     ":3: not valid TOML: Cannot overwrite a value"),
    ("web.toml", load_web, WebConfigError,
     '[web]\nhost = "127.0.0.1"\n\n[imap]\nhost = "mail.example"\n',
     ":4: [imap] security: 'none' sends the employees' passwords in clear"),
    ("web.toml", load_web, WebConfigError, '[web]\nhost = "0.0.0.0"\nsecure_cookies = 1\n',
     ":3: [web] secure_cookies: must be true or false, not 1"),
    ("phone-menu.toml", _phone, PhoneMenuConfigError,
     '# the phone menu\n[mailstore]\nhost = "127.0.0.1"\nservr = "x"\n',
     ":4: [mailstore] servr: unknown key (known: "),
    ("phone-menu.toml", _phone, PhoneMenuConfigError, 'mailstore = 3\n',
     ":1: [mailstore]: must be a table"),
]


@pytest.mark.parametrize(("name", "load", "error", "text", "expected"), CASES)
def test_a_mistake_names_file_line_table_and_key(tmp_path, name, load, error, text, expected):
    path = tmp_path / name
    path.write_text(text, "utf-8")
    with pytest.raises(error) as exc:
        load(path)
    assert str(exc.value).startswith(f"{path}{expected}"), str(exc.value)


@pytest.mark.parametrize(("load", "error"), [(load_mwi, MwiConfigError),
                                             (load_web, WebConfigError),
                                             (_phone, PhoneMenuConfigError)])
def test_a_missing_or_unreadable_file_is_named_with_what_to_do(tmp_path, load, error):
    with pytest.raises(error, match=r"no such file \(") as exc:
        load(tmp_path / "absent.toml")
    assert str(exc.value).startswith(str(tmp_path / "absent.toml"))
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'# r\xe9glages\n')
    with pytest.raises(error, match="not UTF-8 text"):
        load(latin)
