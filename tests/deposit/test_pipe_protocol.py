"""The pipe between mailcall serve and its delivery process, without a process: every
message round-trips, each side sends only its own, and no frame can do more than raise
PipeProtocolError."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcall.core.decisions.plans import DepositPlan, Notify
from mailcall.deposit import pipe_protocol as pipe
from mailcall.deposit.delivery import Target
from mailcall.deposit.voice_message import Origin
from mailcall.plugins import deposit as plugin
from tests.deposit.support import fax, make_policy, voice

AT = datetime(2026, 11, 27, 16, 42, 5, 123456, tzinfo=UTC)
PLAN = DepositPlan(
    mailbox="alice", recipient="alice@example.test", display_name="Alice Martin",
    language="fr", kind="voice", audio_format="opus", fax_formats=("pdf", "tiff"),
    transcription=True,
    notify=(Notify(user="alice", medium="sms", address="+33612345678", why="voicemail"),),
    explanation=("voice message for alice", "audio as opus"),
)
ORIGIN = Origin(sender="mailcall@example.test", domain="example.test",
                timezone=ZoneInfo("Europe/Paris"), sender_name="Test Org")
VOICE = dataclasses.replace(voice("1764260600.1"), duration_ms=4200, ended_by="dtmf")
FAX = dataclasses.replace(fax("1764260600.2", status="FAILED", error="no carrier"),
                          bitrate=14400, resolution="204x196")

EXAMPLES: list[pipe.Message] = [
    pipe.Ready(),
    pipe.StartFailed("cannot use the deposit spool /var/spool/mailcall: [Errno 13]"),
    pipe.Awake(),
    pipe.PlanRequest(1, VOICE),
    pipe.PlanRequest(2, FAX),
    pipe.DepositDelivered(VOICE, PLAN, "<voice.1764260600.1.abc@example.test>"),
    pipe.DepositDelivered(FAX, dataclasses.replace(PLAN, kind="fax", notify=()), "<fax.x@y>"),
    pipe.Drained(3, None),
    pipe.Drained(4, "TimeoutError()"),
    pipe.Stopped(),
    pipe.Wake(),
    pipe.PlanGiven(5, PLAN, ORIGIN, Target("lmtp", unix_path="/run/dovecot/lmtp")),
    pipe.PlanGiven(6, PLAN, dataclasses.replace(ORIGIN, timezone=UTC),
                   Target("smtp", host="::1", port=25)),
    pipe.PlanRefused(7, "mailbox 'ghost' is not a user of the policy"),
    pipe.PlanRetryLater(8, "OSError('resolver down')"),
    pipe.Drain(9, 2.5),
    pipe.Stop(5.0),
]


def test_every_message_type_has_an_example_and_one_sender():
    names = [name for name, _, _ in pipe.MESSAGES]
    classes = [cls for _, cls, _ in pipe.MESSAGES]
    assert len(set(names)) == len(names) == len(set(classes)) == 13
    assert {type(m) for m in EXAMPLES} == set(classes)
    assert set(pipe.Message.__args__) == set(classes)
    for name in names:  # the table in the module docstring is the table in the code
        assert f"    {name} " in pipe.__doc__


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message):
    sender = {cls: side for _, cls, side in pipe.MESSAGES}[type(message)]
    receiver = pipe.Side.DELIVERY if sender is pipe.Side.SERVE else pipe.Side.SERVE
    frame = pipe.PipeEnd(sender).encode(message)
    assert isinstance(frame, bytes) and len(frame) < pipe.MAX_FRAME
    back = pipe.PipeEnd(receiver).decode(frame)
    assert back == message and type(back) is type(message)


def test_a_real_plan_round_trips():
    """What plan_deposit and the plugin give, not only a plan built by hand."""
    policy = make_policy("unix:/run/dovecot/lmtp")
    call = voice("1764260600.3")
    message = pipe.PlanGiven(1, plugin.plan_for(policy, call), plugin.origin_for(policy),
                             plugin.target_for(policy))
    assert pipe.decode(pipe.encode(message)) == message


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_a_side_sends_only_its_own_messages(message):
    sender = {cls: side for _, cls, side in pipe.MESSAGES}[type(message)]
    other = pipe.Side.DELIVERY if sender is pipe.Side.SERVE else pipe.Side.SERVE
    with pytest.raises(pipe.PipeProtocolError, match=f"is sent by {sender.value}"):
        pipe.PipeEnd(other).encode(message)
    with pytest.raises(pipe.PipeProtocolError, match="cannot receive it"):
        pipe.PipeEnd(sender).decode(pipe.encode(message))


def frame(**body) -> bytes:
    return json.dumps(body).encode()


DEPOSIT = json.loads(pipe.encode(pipe.PlanRequest(1, VOICE)))["deposit"]


@pytest.mark.parametrize(("data", "complaint"), [
    (b"", "not a JSON message"),
    (b"\x80\x04\x95 a pickle", "not a JSON message"),
    (b"\xff\xfe{}", "not a JSON message"),
    (b'{"type": "ready"', "not a JSON message"),
    (b"[" * 100000 + b"]" * 100000, "not a JSON message"),
    (b'{"type": "drain", "number": 1, "timeout": NaN}', "NaN is not a JSON number"),
    (b'{"type": "drain", "number": 1, "timeout": 1e999}', "drain.timeout: expected a number"),
    (frame(type="drain", number=1, timeout=10 ** 400), "drain.timeout: expected a number"),
    (frame(type="stop", grace="5"), "stop.grace: expected a number, got '5'"),
    (b'["ready"]', "not a JSON object"),
    (frame(), "unknown message type None"),
    (frame(type="wake-up"), "unknown message type 'wake-up'"),
    (frame(type=["ready"]), "unknown message type"),
    (frame(type="ready", extra=1), "bad ready message: ready: unknown key 'extra'"),
    (frame(type="drained", number=1), "drained: error is missing"),
    (frame(type="drained", number=True, error=None), "drained.number: expected an integer"),
    (frame(type="drained", number="1", error=None), "drained.number: expected an integer"),
    (frame(type="start-failed", reason=["x"]), "start-failed.reason: expected a string"),
    (frame(type="plan-request", number=1, deposit=None), "plan-request.deposit: must not be"),
    (frame(type="plan-request", number=1, deposit={**DEPOSIT, "at": "2026-11-27 16:42"}),
     "no UTC offset"),
    (frame(type="plan-request", number=1, deposit={**DEPOSIT, "at": "yesterday"}),
     "is not an ISO 8601 time"),
    (frame(type="plan-request", number=1, deposit={**DEPOSIT, "sneaky": "x"}),
     "not a VoiceMessage (plan-request.deposit: unknown key 'sneaky')"),
    (frame(type="plan-request", number=1, deposit={"mailbox": "alice"}), "not a FaxMessage"),
    (frame(type="plan-request", number=1,
           deposit={**DEPOSIT, "duration_ms": "4200"}), "duration_ms: expected an integer"),
])
def test_a_garbled_frame_is_a_protocol_error_saying_what_is_wrong(data, complaint):
    with pytest.raises(pipe.PipeProtocolError) as caught:
        pipe.PipeEnd(pipe.Side.SERVE).decode(data)
    assert complaint in str(caught.value)


def given_plan(**changes) -> bytes:
    body = json.loads(pipe.encode(pipe.PlanGiven(1, PLAN, ORIGIN, Target("lmtp", "/x"))))
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        where = body
        for key in parents:
            where = where[key]
        where[leaf] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(("data", "complaint"), [
    (given_plan(origin__timezone="../../etc/passwd"), "is not a known time zone"),
    (given_plan(origin__timezone="Nowhere/Atlantis"), "is not a known time zone"),
    (given_plan(origin__timezone=3600), "expected a time zone name"),
    (given_plan(plan__kind="sms"), "plan-given.plan.kind: expected one of 'voice', 'fax'"),
    (given_plan(plan__fax_formats="pdf"), "plan-given.plan.fax_formats: expected a list"),
    (given_plan(plan__notify=[{"user": "a", "medium": "sms", "address": "+1"}]),
     "plan-given.plan.notify[0]: why is missing"),
    (given_plan(plan__transcription=1), "transcription: expected true or false"),
    (given_plan(target__port="25"), "plan-given.target.port: expected an integer"),
])
def test_a_garbled_plan_is_refused_by_the_delivery_process(data, complaint):
    with pytest.raises(pipe.PipeProtocolError) as caught:
        pipe.PipeEnd(pipe.Side.DELIVERY).decode(data)
    assert complaint in str(caught.value)


def test_an_oversized_frame_is_refused_before_it_is_parsed():
    data = frame(type="start-failed", reason="x" * pipe.MAX_FRAME)
    with pytest.raises(pipe.PipeProtocolError, match="more than"):
        pipe.decode(data)


def test_what_cannot_be_encoded_is_a_protocol_error_too():
    naive = dataclasses.replace(VOICE, at=datetime(2026, 11, 27, 16, 42))
    with pytest.raises(pipe.PipeProtocolError, match="has no time zone"):
        pipe.encode(pipe.PlanRequest(1, naive))
    with pytest.raises(pipe.PipeProtocolError, match="not a pipe message"):
        pipe.encode(("wake",))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_ever_raise_the_protocol_error(data):
    try:
        message = pipe.decode(data)
    except pipe.PipeProtocolError:
        return
    assert type(message) in {cls for _, cls, _ in pipe.MESSAGES}


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=5),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([name for name, _, _ in pipe.MESSAGES]),
       st.dictionaries(st.sampled_from(["number", "deposit", "plan", "origin", "target",
                                        "reason", "error", "timeout", "grace", "message_id"]),
                       JSONISH, max_size=5))
def test_well_formed_json_of_any_shape_only_ever_raises_the_protocol_error(name, fields):
    """Right message names with fields of any JSON shape: the decoder never fails with
    anything but PipeProtocolError (no TypeError or KeyError leaking into the loop)."""
    try:
        message = pipe.decode(json.dumps({"type": name, **fields}).encode())
    except pipe.PipeProtocolError:
        return
    assert type(message) is {n: c for n, c, _ in pipe.MESSAGES}[name]
