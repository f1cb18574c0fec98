"""What the bridge answers each request, decided by the policy and the deposit key (no socket:
test_bridge.py serves the same decisions over the real one)."""

from __future__ import annotations

import time
from pathlib import Path

from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import compile_text
from mailcall.deposit.seal import DEPOSIT_WINDOW, _v1, deposit_key, deposit_token
from mailcall.sieve.bridge_server import LIMITS
from mailcall.sieve.mail_decision import MailDecider
from mailcall.sieve.mail_facts import BridgeRequest, RequestReader
from mailcall.sieve.script_protocol import serialize_reply, serialize_request
from tests.sieve.support import (
    ALICE,
    ALICE_ENV,
    DEPOSIT_ID,
    EVENING,
    OFFICE_HOURS,
    policy_text,
    sealed,
)


def make_decider(tmp_path: Path, spool: Path | None = None) -> MailDecider:
    spool = spool or tmp_path / "spool"
    policy = compile_text(policy_text(socket=tmp_path / "mailcall", smtp_port=25,
                                      file_path=tmp_path / "n.jsonl", spool=spool))
    runtime = Runtime(policy, make_plugin_manager(entrypoints=False))
    runtime.clock = lambda: OFFICE_HOURS
    return MailDecider(runtime, spool)


def request_of(raw: bytes) -> BridgeRequest:
    reader = RequestReader(LIMITS)
    request = reader.feed(raw) or reader.feed(b"")
    assert request is not None
    return request


def answer(decider: MailDecider, raw: bytes) -> bytes:
    """What the bridge writes back for `raw`: the verdict, serialized as on the socket."""
    verdict = decider.decide(request_of(raw))
    return serialize_reply(verdict.ok, verdict.output)


def test_notify_carries_the_cleaned_fields_to_the_notice(tmp_path: Path):
    decider = make_decider(tmp_path)
    verdict = decider.decide(request_of(serialize_request(["notify"], ALICE_ENV, (
        b"message-id=%3Cm1%40example.net%3E\nsubject=Devis%20%C3%A9t%C3%A9\n"
        b"from=Bob%0D%0ABcc%3A%20x\nlist-id=\n"))))
    assert verdict.ok and verdict.output == b""
    notice = verdict.notice
    assert notice is not None
    assert (notice.recipient, notice.sender) == (ALICE, "bob@example.net")
    assert (notice.message_id, notice.subject, notice.from_header) == (
        "<m1@example.net>", "Devis été", "Bob Bcc: x")
    # alice's preferred medium only, to her mobile
    assert [(n.medium, n.address) for n in notice.notifications] == [("sms", "+33612345678")]


def test_outside_hours_true_and_nothing_to_notify(tmp_path: Path):
    decider = make_decider(tmp_path)
    decider.runtime.clock = lambda: EVENING
    verdict = decider.decide(request_of(serialize_request(["notify"], ALICE_ENV)))
    assert (verdict.ok, verdict.notice) == (True, None)


def test_unknown_verb_is_false_and_logged(tmp_path: Path, caplog):
    decider = make_decider(tmp_path)
    with caplog.at_level("WARNING", logger="mailcall.sieve.mail_decision"):
        assert answer(decider, serialize_request(["reboot\x1b[2J"], ALICE_ENV)) == b"-\n"
    assert "unknown verb 'reboot [2J' from Sieve" in caplog.text
    assert "\x1b" not in caplog.text


def test_folder_only_for_a_proven_deposit(tmp_path: Path):
    decider = make_decider(tmp_path)
    spool = decider.spool_dir
    assert answer(decider, serialize_request(["folder"], ALICE_ENV, sealed(spool))) == \
        b"Voicemail+\n"
    assert answer(decider, serialize_request(["folder"], ALICE_ENV, sealed(
        spool, context="fax-message"))) == b"Fax+\n"
    assert answer(decider, serialize_request(["folder"], ALICE_ENV,
                                             b"context=voice-message\n")) == b"-\n"


def deposit_request(spool: Path, env: dict[str, str] | None = None, **kw) -> bytes:
    return serialize_request(["deposit"], env or ALICE_ENV, sealed(spool, **kw))


def test_deposit_proven_only_by_its_token(tmp_path: Path, caplog):
    """The one thing an outsider cannot write: the token of mailcall's key for this very
    Message-ID, recipient and context. Sender, context and id alone prove nothing."""
    spool = tmp_path / "spool"
    other = tmp_path / "other-spool"
    forged = deposit_token(deposit_key(other), DEPOSIT_ID, ALICE, "voice-message")
    real = deposit_token(deposit_key(spool), DEPOSIT_ID, ALICE, "voice-message")
    bob_env = {**ALICE_ENV, "USER": "bob@stockinox.example",
               "RECIPIENT": "bob@stockinox.example"}
    cases = {
        "genuine": (deposit_request(spool), b"+\n"),
        "genuine, fax": (deposit_request(spool, context="fax-message"), b"+\n"),
        "recipient case": (deposit_request(spool, recipient="alice@stockinox.example",
                           env={**ALICE_ENV, "RECIPIENT": "Alice@StockInox.example"}), b"+\n"),
        "no token": (deposit_request(spool, token=""), b"-\n"),
        "another key": (deposit_request(spool, token=forged), b"-\n"),
        "another message": (deposit_request(spool, msgid="<voice.x.1@stockinox.example>",
                                            token=real), b"-\n"),
        "another user": (deposit_request(spool, env=bob_env, token=real), b"-\n"),
        "another context": (deposit_request(spool, context="fax-message", token=real), b"-\n"),
        "not a deposit": (deposit_request(spool, context="x-not-a-voice-message-really"),
                          b"-\n"),
        "bare v1": (deposit_request(spool, token="v1."), b"-\n"),
        "genuine v1 (replayable)": (deposit_request(spool, token=_v1(
            deposit_key(spool), DEPOSIT_ID, ALICE, "voice-message")), b"-\n"),
        "older than the window": (deposit_request(spool, token=deposit_token(
            deposit_key(spool), DEPOSIT_ID, ALICE, "voice-message",
            at=time.time() - DEPOSIT_WINDOW - 60)), b"-\n"),
        "from the future": (deposit_request(spool, token=deposit_token(
            deposit_key(spool), DEPOSIT_ID, ALICE, "voice-message",
            at=time.time() + 3600)), b"-\n"),
    }

    decider = make_decider(tmp_path, spool)
    with caplog.at_level("WARNING", logger="mailcall.sieve.mail_decision"):
        answers = {name: answer(decider, raw) for name, (raw, _) in cases.items()}
    assert answers == {name: expected for name, (_, expected) in cases.items()}
    refused = [r.getMessage() for r in caplog.records if "claims to be a mailcall deposit" in
               r.getMessage()]
    assert len(refused) == 10
    assert any("carries no Mailcall-Deposit token" in m for m in refused)
    for why in ("old form v1", "more than the 86400 s", "in the future"):
        assert any(why in m for m in refused), why
    assert all(real not in m and forged not in m for m in refused)  # tokens are never logged
    assert deposit_key(spool).hex() not in caplog.text


