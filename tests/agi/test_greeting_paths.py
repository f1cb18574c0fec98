"""Where a user's greeting lives: one rule (agi/folders.py) for the player, the recorders and
the generator.

Review finding (issue #11): the voicemail handler built the path with ``safe_component``
while the greetings plugin joined the raw user id, so for an id that is not one plain path
component the generator wrote outside the greetings folder (``../evil``) where the player
never looked; and the phone menu borrowed the greeting handler's private helpers.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from types import MappingProxyType

import pytest

from mailcall.agi.folders import (
    WAV_HEADER,
    GreetingPathRefused,
    commit_recording,
    discard_recording,
    generated_greeting_path,
    greeting_path,
    prepare_recording,
)
from mailcall.core.policy.load import compile_text
from mailcall.core.policy.model import GREETING_KINDS
from mailcall.plugins.greetings import generate_greetings

from .fake_asterisk import Call
from .harness import OFFICE_HOURS, POLICY, make_runtime
from .support import MEDIA
from .test_handlers import drive

ESCAPING_IDS = ["../evil", "a/b", "/etc", ".hidden", "..", "", "jean dupont", "x" * 65,
                "carole\x00", "\u202eevil"]


class _Speaker:
    """Writes a real recorded WAV as its "speech": what is tested is where it lands."""

    name = "fake"

    def synthesize(self, text: str, language: str, path: str) -> bool:
        Path(path).write_bytes((MEDIA / "voicemail-dtmf-end.wav").read_bytes())
        return True


def _with_user(policy, uid: str, like: str = "carole"):
    """`policy` with one more user, `uid`, copied from `like`: what a plugin or a hand-built
    policy could hand over (the policy compiler itself refuses such ids)."""
    user = dataclasses.replace(policy.users[like], id=uid)
    return dataclasses.replace(policy, users=MappingProxyType({**policy.users, uid: user}))


@pytest.mark.parametrize("uid", ESCAPING_IDS)
def test_a_user_id_that_is_not_one_plain_component_is_refused(tmp_path, uid):
    with pytest.raises(GreetingPathRefused, match="cannot name a folder under"):
        greeting_path(tmp_path, uid, "busy")
    with pytest.raises(GreetingPathRefused):
        generated_greeting_path(tmp_path, uid, "busy")


@pytest.mark.parametrize("kind", ["../busy", "busy/../../x", "other", ""])
def test_a_kind_outside_the_greeting_kinds_is_refused(tmp_path, kind):
    with pytest.raises(GreetingPathRefused, match="is not one of unavailable, busy, absence"):
        greeting_path(tmp_path, "carole", kind)


def test_the_refusal_shows_the_id_without_its_hidden_characters(tmp_path):
    with pytest.raises(GreetingPathRefused) as exc:
        greeting_path(tmp_path, "evil\u202e\nline", "busy")
    assert "\u202e" not in str(exc.value) and "\n" not in str(exc.value)


def test_policy_ids_map_to_their_own_folder(tmp_path):
    policy = compile_text(POLICY, name="test-policy.toml")
    for uid in policy.users:
        for kind in GREETING_KINDS:
            assert greeting_path(tmp_path, uid, kind) == tmp_path / uid / kind
            assert generated_greeting_path(tmp_path, uid, kind) == (
                tmp_path / uid / f"generated-{kind}")


def test_the_generator_writes_nothing_outside_the_folder_for_an_escaping_id(tmp_path, caplog):
    """On the old code ``generate_greetings`` wrote ``greetings/../evil/generated-*.wav``,
    i.e. ``tmp_path/evil``: outside the greetings folder, where no player looks."""
    caplog.set_level(logging.ERROR, logger="mailcall.greetings")
    policy = _with_user(compile_text(POLICY, name="test-policy.toml"), "../evil")
    greetings = tmp_path / "greetings"
    written = generate_greetings(policy, [_Speaker()], greetings, OFFICE_HOURS)
    assert not (tmp_path / "evil").exists()
    assert all(path.resolve().is_relative_to(greetings.resolve()) for path in written)
    assert "no greeting generated for this user" in caplog.text and "'../evil'" in caplog.text
    # The other users still get theirs.
    assert (greetings / "carole" / "generated-unavailable.wav").is_file()


def test_the_generated_greeting_is_the_one_the_voicemail_plays(tmp_path):
    rt = make_runtime(tmp_path)
    greetings = tmp_path / "greetings"
    written = generate_greetings(rt.policy, [_Speaker()], greetings, OFFICE_HOURS)
    played = generated_greeting_path(greetings, "carole", "unavailable")
    assert played.with_name(played.name + ".wav") in written
    call = drive(rt, Call(script="voicemail", args=("203",), existing_files={str(played)}))
    assert f'STREAM FILE {played} "#"\n' in call.commands
    assert not any("vm-isunavail" in c for c in call.commands)


def test_voicemail_for_an_escaping_id_plays_stock_prompts_and_keeps_the_message(tmp_path,
                                                                                  caplog):
    caplog.set_level(logging.ERROR, logger="mailcall.agi.voicemail")
    rt = make_runtime(tmp_path)
    rt.replace_policy(_with_user(rt.policy, "../evil"))
    planted = tmp_path / "evil" / "unavailable"  # where the old path could lead
    planted.parent.mkdir()
    shutil.copyfile(MEDIA / "voicemail-dtmf-end.wav", planted.with_suffix(".wav"))
    call = drive(rt, Call(script="voicemail", args=("../evil",),
                          existing_files={str(planted)}))
    assert not any(str(tmp_path / "evil") in c for c in call.commands)
    assert any("vm-" in c for c in call.commands if c.startswith("STREAM FILE"))
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "../evil"
    assert "no personal greeting played" in caplog.text


def test_a_recording_replaces_the_greeting_in_one_rename(tmp_path):
    final = greeting_path(tmp_path / "greetings", "carole", "busy")
    tmp = prepare_recording(final, "1795887768.3/../x")
    assert tmp.parent == final.parent and tmp.name.startswith(".busy.tmp-")
    assert "/" not in tmp.name
    sound = (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    tmp.with_name(tmp.name + ".wav").write_bytes(sound)
    assert commit_recording(tmp, final)
    assert final.with_name("busy.wav").read_bytes() == sound
    assert list(final.parent.iterdir()) == [final.with_name("busy.wav")]


def test_a_recording_without_sound_or_discarded_leaves_the_old_greeting(tmp_path):
    final = greeting_path(tmp_path / "greetings", "carole", "busy")
    old = b"RIFF-old-greeting" * 10
    tmp = prepare_recording(final, "1")
    final.with_name("busy.wav").write_bytes(old)
    tmp.with_name(tmp.name + ".wav").write_bytes(b"\0" * WAV_HEADER)
    assert not commit_recording(tmp, final)
    assert not commit_recording(tmp, final)  # nothing recorded at all
    tmp.with_name(tmp.name + ".wav").write_bytes(b"\0" * 100)
    discard_recording(tmp)
    discard_recording(tmp)  # twice: a hang-up then the executor's clean-up
    assert final.with_name("busy.wav").read_bytes() == old
    assert list(final.parent.iterdir()) == [final.with_name("busy.wav")]
