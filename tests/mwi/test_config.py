"""mwi.toml: defaults, and every problem named by file, table and key."""

from __future__ import annotations

import pytest

from mailcall.mwi.config import MwiConfigError, load


def write(tmp_path, text):
    path = tmp_path / "mwi.toml"
    path.write_text(text)
    return path


def test_defaults_follow_the_policy_voice_folder(tmp_path):
    s = load(write(tmp_path, ""), voice_folder="Messagerie")
    assert s.imap.folder == "Messagerie" and s.ami.port == 5038
    assert s.lamp.mailbox == "{id}@mailcall"


@pytest.mark.parametrize(("text", "message"), [
    ("[imap]\nport = 0\n", "[imap] port: must be a port number"),
    ("[imap]\nhost = \"mail.example.org\"\n", "[imap] security: 'none' sends the master password"),
    ("[lamp]\nmailbox = \"{name}@x\"\n", "[lamp] mailbox"),
    ("[ami]\nsecret = \"x\"\n", "[ami] secret: unknown key"),
    ("[ami]\nsecret_file = \"relative\"\n", "must be an absolute path"),
    ("[imap]\nseparator = \"ab\"\n", "one punctuation character"),
    ("[other]\n", "unknown table"),
    ("[imap\n", "not valid TOML"),
])
def test_problems_name_file_and_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(MwiConfigError) as err:
        load(path)
    assert str(path) in str(err.value) and message in str(err.value)
