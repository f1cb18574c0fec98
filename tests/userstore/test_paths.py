"""Where the store lives: beside the greetings in mailcall's state directory, unless told."""

from __future__ import annotations

from pathlib import Path

from mailcall.core.policy.model import ServerSettings
from mailcall.userstore.paths import store_path


def test_default_is_the_state_directory(monkeypatch, policy):
    monkeypatch.delenv("MAILCALL_USER_STORE", raising=False)
    assert store_path(policy.server) == Path("/var/lib/mailcall/users/store.sqlite")
    other = ServerSettings(greetings_dir="/srv/pbx/greetings")
    assert store_path(other) == Path("/srv/pbx/users/store.sqlite")


def test_environment_then_caller_win(monkeypatch, tmp_path):
    monkeypatch.setenv("MAILCALL_USER_STORE", str(tmp_path / "env.sqlite"))
    assert store_path(ServerSettings()) == tmp_path / "env.sqlite"
    assert store_path(ServerSettings(), tmp_path / "given.sqlite") == tmp_path / "given.sqlite"
