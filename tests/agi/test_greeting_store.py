"""The greeting script and the mailbox's options follow one rule for which greetings a
user may record: the profile's. A greeting the user turned off (page, CLI) and records
again by phone is turned on again in the user store, origin ``phone``
(docs/phone-menu.md, "PIN and absence by phone: the user store"); a kind the profile
does not grant is refused with the spoken "invalid option".

Review finding (issue #11 §4): the greeting script offered only the greetings the user
had kept on, so the same act by phone was refused there and accepted by the menu.
"""

from __future__ import annotations

from contextlib import contextmanager

from mailcall.agi import prompts
from mailcall.userstore.overlay import StoreOverlay, attach, decision_policy, detach
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore

from .fake_asterisk import Call
from .harness import PIN_HASH, make_runtime, policy_text
from .test_handlers import drive


@contextmanager
def obeying_a_store(runtime, path):
    """`runtime` reading the user store at `path`, as under the user-store service."""
    overlay = StoreOverlay.for_file(path)
    overlay.open()
    attach(runtime, overlay)
    try:
        yield overlay
    finally:
        closed = detach(runtime)
        if closed is not None:
            closed.close()


@contextmanager
def opened(path):
    store = UserStore(SqliteStore(path))
    try:
        yield store
    finally:
        store.backend.close()


def test_greeting_turned_off_on_the_page_is_recorded_and_turned_on_again(tmp_path):
    rt = make_runtime(tmp_path)
    path = tmp_path / "users" / "store.sqlite"
    with opened(path) as store:
        store.set(rt.policy, "alice", {"greetings": ["unavailable"]}, actor="alice",
                  origin="web")
    with obeying_a_store(rt, path) as overlay:
        overlay.refresh(force=True)
        assert "busy" not in decision_policy(rt).users["alice"].features.greetings
        assert "busy" in rt.policy.users["alice"].features.greetings  # her profile grants it
        call = drive(rt, Call(script="greeting", args=("alice",), get_data=["2468", "2"]))
        assert call.variables_set["MAILCALL_STATUS"] == "GREETING_SAVED"
        assert call.variables_set["MAILCALL_GREETING"] == "busy"
        assert f'STREAM FILE {prompts.INVALID_CHOICE} ""\n' not in call.commands
        assert (tmp_path / "greetings" / "alice" / "busy.wav").is_file()
        with opened(path) as store:
            stored = store.refinements("alice").values["greetings"]
            audit = [e.stamp.origin for e in store.audit("alice") if e.field == "greetings"]
        assert stored.value == ["unavailable", "busy"]
        assert stored.stamp.origin == "phone" and stored.stamp.actor == "alice"
        assert audit == ["phone", "web"]  # newest first
        # The next call routed obeys it at once: the router's index was refreshed.
        assert "busy" in decision_policy(rt).users["alice"].features.greetings


def test_greeting_the_profile_does_not_grant_is_refused_and_nothing_is_written(tmp_path):
    # carole's profile (office) grants the unavailable greeting only; give her a PIN.
    rt = make_runtime(tmp_path, policy_text=policy_text({"users": {"carole": {"pin": PIN_HASH}}}))
    assert rt.policy.users["carole"].features.greetings == ("unavailable",)
    path = tmp_path / "users" / "store.sqlite"
    with obeying_a_store(rt, path):
        call = drive(rt, Call(script="greeting", args=("carole",),
                              get_data=["2468", "2", "3", "2"]))
        assert call.variables_set["MAILCALL_STATUS"] == "NO_CHOICE"
        assert call.commands.count(f'STREAM FILE {prompts.INVALID_CHOICE} ""\n') == 3
        assert f'STREAM FILE {prompts.GOODBYE} ""\n' in call.commands
        assert not any(c.startswith("RECORD FILE") for c in call.commands), call.commands
        assert not (tmp_path / "greetings").exists()
        assert not path.exists()  # no store write for a refused greeting
