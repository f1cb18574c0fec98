"""The one fake Asterisk, of the tests and the benchmarks: it replays a recorded trace byte
for byte (:func:`replay`), plays a scripted :class:`Call` whose replies are the recorded
ones (:func:`run_call`), or answers a plain call from the same replies at the least cost,
for load (:func:`quick_session`).

It connects to the real server like Asterisk does, sends an environment block
built from a recorded one, and answers each command with the reply recorded
for the same command in ``shared/asterisk/traces`` (Dial and DIALSTATUS from
``dial-*.jsonl``, RECORD FILE from ``voicemail*.jsonl``, 511 from ``dtmf.jsonl``
...). On RECORD FILE it copies the recorded WAV to the requested path, as
Asterisk would. Dead-channel rules follow res_agi.c: after a hang-up only
commands flagged "dead-safe" (GET/SET VARIABLE, EXEC, VERBOSE...) are answered,
the others get 511.

How a hang-up reaches the server follows the traces, never a guess. In every
recorded hang-up the command that was running when the caller left answers
normally (``dtmf``: STREAM FILE ``200 result=-1 endpos=6080``;
``voicemail-hangup``: RECORD FILE ``200 result=-1 (hangup) endpos=18032``),
and the bare ``HANGUP`` line only comes once the server sends its *next*
command, just before that command's reply (``dtmf``: HANGUP then 511;
``hangup-midway``: HANGUP then ``200 result=1 ()`` for GET VARIABLE). The fake
keeps that notice pending (:attr:`Call.hangup_pending`) and sends it with the
next reply. No trace shows a caller hanging up during Dial; the default
``dials=["hangup"]`` is built from the same rule: Dial answers ``200
result=-1`` (its reply line in ``dial-answer``) and the following GET VARIABLE
DIALSTATUS gets ``HANGUP`` then ``200 result=1 (CANCEL)`` (CANCEL: app_dial's
documented DIALSTATUS when the caller hangs up). Shapes the traces do not show
are opt-in, named ``*-early``/``*-eager`` and used only by defensive tests that
say why they are plausible.
"""

from __future__ import annotations

import asyncio
import inspect
import shlex
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from .support import MEDIA, Trace, load_trace
from .support import TRACES as TRACE_DIR


class ReplayMismatch(AssertionError):
    pass


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close Asterisk's side; a server that already reset the connection leaves nothing
    to flush."""
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def replay(trace: Trace, host: str, port: int, *, chunk: int | None = None,
                 timeout: float = 5.0) -> list[str]:
    """Play Asterisk's side of `trace` against a server, byte for byte.

    Every server line is read and compared with the recording; every Asterisk
    line is written as recorded. Returns the server lines received. After the
    last recorded line, waits for the server to close (as Asterisk would, it
    then writes one more HANGUP if the trace did not end with one).
    """
    reader, writer = await asyncio.open_connection(host, port)
    received: list[str] = []
    try:
        for d, line in trace.lines:
            if d == "asterisk":
                data = line.encode()
                if chunk:
                    for k in range(0, len(data), chunk):
                        writer.write(data[k:k + chunk])
                        await writer.drain()
                else:
                    writer.write(data)
                await writer.drain()
            else:
                got = await asyncio.wait_for(reader.readline(), timeout)
                received.append(got.decode())
                if got != line.encode():
                    raise ReplayMismatch(f"{trace.name}: expected {line!r}, server sent {got!r}")
        if trace.lines[-1] != ("asterisk", "HANGUP\n"):
            writer.write(b"HANGUP\n")
        try:
            rest = await asyncio.wait_for(reader.read(), timeout)
        except ConnectionResetError:
            # The server closed with our last HANGUP still unread in its socket: the
            # kernel then answers with a reset instead of a FIN. Nothing more came.
            rest = b""
        if rest:
            raise ReplayMismatch(f"{trace.name}: server sent more than recorded: {rest!r}")
    finally:
        await close_quietly(writer)
    return received


def recorded_reply(trace: Trace, prefix: str, nth: int = 0) -> list[str]:
    """The Asterisk lines that answered the `nth` server line starting with `prefix`."""
    lines = trace.after_env
    hits = [i for i, (d, line) in enumerate(lines) if d == "server" and line.startswith(prefix)]
    i = hits[nth] + 1
    out = []
    while i < len(lines) and lines[i][0] == "asterisk":
        out.append(lines[i][1])
        if lines[i][1] != "HANGUP\n":
            break
        i += 1
    return out


def _t(name: str) -> Trace:
    return load_trace(TRACE_DIR / f"{name}.jsonl")


class Recorded:
    """Replies lifted from the traces, by scenario."""

    def __init__(self) -> None:
        busy, noans, unav, ans = (_t("dial-busy"), _t("dial-noanswer"), _t("dial-unavailable"),
                                  _t("dial-answer"))
        self.dial = {
            "busy": (recorded_reply(busy, "EXEC Dial"),
                     recorded_reply(busy, "GET VARIABLE DIALSTATUS")),
            "noanswer": (recorded_reply(noans, "EXEC Dial"),
                         recorded_reply(noans, "GET VARIABLE DIALSTATUS")),
            "unavailable": (recorded_reply(unav, "EXEC Dial"),
                            recorded_reply(unav, "GET VARIABLE DIALSTATUS")),
            "answer": (recorded_reply(ans, "EXEC Dial"),
                       recorded_reply(ans, "GET VARIABLE DIALSTATUS")),
        }
        vm, vmh, dtmf, basic = _t("voicemail"), _t("voicemail-hangup"), _t("dtmf"), _t("basic")
        self.dial_hungup = [x for x in recorded_reply(ans, "EXEC Dial") if x != "HANGUP\n"]
        """Dial's reply when it ended on a hang-up: ``200 result=-1`` (dial-answer)."""
        self.stream_hangup = recorded_reply(dtmf, "STREAM FILE")
        """STREAM FILE cut by the caller hanging up: ``200 result=-1 endpos=6080`` (dtmf)."""
        self.answer = recorded_reply(vm, "ANSWER")
        self.stream_ok = recorded_reply(vm, "STREAM FILE", 0)
        self.stream_missing = recorded_reply(vm, "STREAM FILE", 1)
        self.record = {"dtmf": recorded_reply(vm, "RECORD FILE"),
                       "hangup": recorded_reply(vmh, "RECORD FILE")}
        self.record_media = {"dtmf": MEDIA / "voicemail-dtmf-end.wav",
                             "hangup": MEDIA / "voicemail-hangup-end.wav"}
        self.dead = [x for x in recorded_reply(dtmf, "SAY NUMBER") if x != "HANGUP\n"]
        self.set_ok = recorded_reply(basic, "SET VARIABLE MAILCALL_TARGET")
        self.usage_error = recorded_reply(basic, "GET VARIABLE\n")
        self.unset = recorded_reply(basic, "GET VARIABLE NO_SUCH_VARIABLE")
        self.env_template = _t("dial-busy").env_bytes.decode()
        fax = _t("fax-received")
        self.fax_vars = {}
        for name in ("FAXSTATUS", "FAXERROR", "FAXPAGES", "FAXBITRATE", "FAXRESOLUTION",
                     "REMOTESTATIONID", "FAXFILE"):
            self.fax_vars[name] = recorded_reply(fax, f"GET VARIABLE {name}\n")


RECORDED = Recorded()

DEAD_OK = ("GET VARIABLE", "SET VARIABLE", "GET FULL VARIABLE", "EXEC", "VERBOSE", "DATABASE",
           "NOOP")


@dataclass
class Call:
    """What one scripted call does, and what the fake saw."""

    script: str = "route"
    args: tuple[str, ...] = ()
    callerid: str = "+33611111111"
    calleridname: str = "Client"
    uniqueid: str = "1795887768.3"
    extension: str = "s"
    dnid: str = "unknown"
    dials: list[str] = field(default_factory=list)
    """Outcome of each Dial in turn: busy, noanswer, unavailable, answer, hangup (the
    caller leaves while it rings: traced shapes, see the module docstring), or
    hangup-early (the caller left just before Dial was sent: ``HANGUP`` then the Dial
    reply, the hangup-midway shape for a dead-safe command)."""
    record: str = "dtmf"
    """RECORD FILE outcome: dtmf, hangup (both copy the recorded WAV and reply as
    recorded; after "hangup" the HANGUP notice comes with the next reply), empty,
    hangup-eager (HANGUP notice right after the reply, before any next command: not
    traced), "drop" (copy the WAV, then close the connection without replying),
    "stall" (copy the WAV, never reply) or "refused" (copy the WAV, reply 520)."""
    hangup_on_stream: bool = False
    """The caller hangs up during the first STREAM FILE: the ``dtmf`` trace's shape."""
    eager_notice: bool = False
    """With hangup_on_stream: the ``HANGUP`` line follows the cut reply at once, before the
    next command. res_agi's loop writes it as soon as it finds the channel hung up, right
    after the reply (0.3 ms later in ``dtmf``, where the server's next command happened to
    be faster)."""
    hangup_before: str = ""
    """The caller hangs up just before the first command starting with this is sent:
    ``HANGUP`` then its reply (dead-safe) or 511 (``hangup-midway``, ``dtmf``)."""
    get_data: list[str] = field(default_factory=list)
    variables: dict[str, list[str]] = field(default_factory=dict)
    existing_files: set[str] = field(default_factory=set)
    # filled in by the fake
    commands: list[str] = field(default_factory=list)
    variables_set: dict[str, str] = field(default_factory=dict)
    recorded_to: list[str] = field(default_factory=list)
    dead_answers: int = 0
    """Commands answered ``511`` (sent after the caller was gone)."""
    hungup: bool = False
    hangup_pending: bool = False
    """The caller is gone; the HANGUP line goes out before the next reply (traced)."""

    def answer(self, line: str, words: list[str]) -> list[str] | Awaitable[list[str]] | None:
        """A scripted caller's own reply to `line` (tests/phonemenu/phone.py), or an
        awaitable of it (a caller who listens a while before pressing), or None for the
        traced replies below. Not asked for what a dead channel refuses (511)."""
        return None

    def env_bytes(self) -> bytes:
        text = RECORDED.env_template
        subst = {
            "agi_network_script": self.script,
            "agi_request": f"agi://127.0.0.1:4573/{self.script}",
            "agi_callerid": self.callerid,
            "agi_calleridname": self.calleridname,
            "agi_uniqueid": self.uniqueid,
            "agi_extension": self.extension,
            "agi_dnid": self.dnid,
        }
        lines = []
        for line in text.split("\n")[:-2]:
            key = line.partition(":")[0]
            lines.append(f"{key}: {subst[key]}" if key in subst else line)
        lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(self.args, 1)]
        return ("\n".join(lines) + "\n\n").encode()


def _words(line: str) -> list[str]:
    return shlex.split(line.rstrip("\n"), posix=True)


async def run_call(call: Call, host: str, port: int, timeout: float = 10.0) -> Call:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(call.env_bytes())
    dial_queue = list(call.dials)
    data_queue = list(call.get_data)
    current_dial: str | None = None
    stream_hangup = call.hangup_on_stream
    dropped = False
    try:
        while True:
            raw = await asyncio.wait_for(reader.readline(), timeout)
            if not raw:
                break
            line = raw.decode()
            call.commands.append(line)
            words = _words(line)
            upper = " ".join(words[:3]).upper()
            out: list[str]
            notice: list[str] = []
            if (call.hangup_before and not call.hungup
                    and line.upper().startswith(call.hangup_before.upper())):
                call.hangup_pending = True
            if call.hangup_pending:
                call.hangup_pending = False
                call.hungup = True
                notice = ["HANGUP\n"]
            if call.hungup and not upper.startswith(DEAD_OK):
                out = list(RECORDED.dead)
                call.dead_answers += 1
            elif (scripted := call.answer(line, words)) is not None:
                out = await scripted if inspect.isawaitable(scripted) else scripted
            elif upper.startswith("EXEC DIAL"):
                current_dial = dial_queue.pop(0)
                if current_dial == "hangup":
                    call.hangup_pending = True
                    out = list(RECORDED.dial_hungup)
                elif current_dial == "hangup-early":
                    call.hungup = True
                    out = ["HANGUP\n", *RECORDED.dial_hungup]
                else:
                    out = list(RECORDED.dial[current_dial][0])
            elif upper.startswith("GET VARIABLE DIALSTATUS"):
                if current_dial in ("hangup", "hangup-early"):
                    out = ["200 result=1 (CANCEL)\n"]
                else:
                    out = list(RECORDED.dial[current_dial][1] if current_dial else RECORDED.unset)
            elif upper.startswith("GET VARIABLE"):
                out = list(call.variables.get(words[2], RECORDED.unset))
            elif upper.startswith(("SET VARIABLE",)):
                call.variables_set[words[2]] = words[3]
                out = list(RECORDED.set_ok)
            elif upper.startswith("ANSWER"):
                out = list(RECORDED.answer)
            elif upper.startswith("STREAM FILE"):
                if stream_hangup:
                    stream_hangup = False
                    out = list(RECORDED.stream_hangup)
                    if call.eager_notice:
                        call.hungup = True
                        out.append("HANGUP\n")
                    else:
                        call.hangup_pending = True
                elif words[2].startswith("/") and words[2] not in call.existing_files:
                    out = list(RECORDED.stream_missing)
                else:
                    out = list(RECORDED.stream_ok)
            elif upper.startswith("RECORD FILE"):
                path = Path(words[2] + "." + words[3])
                call.recorded_to.append(str(path))
                if call.record == "stall":  # recording goes on and on: never replies
                    shutil.copyfile(RECORDED.record_media["dtmf"], path)
                    await reader.read()
                    call.hungup = dropped = True
                    break
                if call.record == "refused":  # a 520 after writing part of the message
                    shutil.copyfile(RECORDED.record_media["dtmf"], path)
                    writer.write("".join(RECORDED.usage_error).encode())
                    await writer.drain()
                    continue
                if call.record == "drop":
                    shutil.copyfile(RECORDED.record_media["hangup"], path)
                    call.hungup = dropped = True
                    break
                shape = "hangup" if call.record == "hangup-eager" else call.record
                if shape in RECORDED.record:
                    shutil.copyfile(RECORDED.record_media[shape], path)
                    out = list(RECORDED.record[shape])
                    if call.record == "hangup":
                        call.hangup_pending = True
                    elif call.record == "hangup-eager":
                        call.hungup = True
                        out.append("HANGUP\n")
                else:
                    path.write_bytes(b"RIFF")  # Asterisk wrote nothing useful
                    out = ["200 result=0 (timeout) endpos=0\n"]
            elif upper.startswith("GET DATA"):
                digits = data_queue.pop(0) if data_queue else ""
                out = [f"200 result={digits}\n" if digits else "200 result= (timeout)\n"]
            else:
                out = ["200 result=0\n"]
            writer.write("".join(notice + out).encode())
            await writer.drain()
        if not dropped:
            # "When the session ends Asterisk writes one more HANGUP, even if the server
            # already closed" (shared/asterisk/README.md).
            writer.write(b"HANGUP\n")
    finally:
        await close_quietly(writer)
    return call


class Answers:
    """The replies :func:`run_call` gives a plain `call`, precomputed as bytes, for
    :func:`quick_session`: Dials, variables and ANSWER (a route that ends in someone
    answering), no hang-up, no scripted caller, no prompt or recording.

    The benchmarks' Asterisk must cost next to nothing, so that what they measure is the
    server; answering from this table, they still answer what the traces recorded: the
    same environment block and, per command, the same reply as :func:`run_call`.
    """

    def __init__(self, call: Call) -> None:
        self.env = call.env_bytes()
        self.dials = tuple(("".join(RECORDED.dial[outcome][0]).encode(),
                            "".join(RECORDED.dial[outcome][1]).encode())
                           for outcome in call.dials)
        """(Dial's reply, DIALSTATUS's reply) for each Dial in turn."""
        self.unset = "".join(RECORDED.unset).encode()
        self.set_ok = "".join(RECORDED.set_ok).encode()
        self.answer = "".join(RECORDED.answer).encode()

    def session(self) -> Callable[[bytes], bytes]:
        """The replies of one session: call it with each command line, in order."""
        dials, unset, set_ok, answer = self.dials, self.unset, self.set_ok, self.answer
        dial = -1

        def reply(line: bytes) -> bytes:
            nonlocal dial
            if line.startswith(b"EXEC Dial"):
                dial += 1
                return dials[dial][0]
            if line.startswith(b"GET VARIABLE DIALSTATUS"):
                return dials[dial][1] if dial >= 0 else unset
            if line.startswith(b"GET VARIABLE"):
                return unset
            if line.startswith(b"SET VARIABLE"):
                return set_ok
            if line.startswith(b"ANSWER"):
                return answer
            return b"200 result=0\n"

        return reply


def desk_then_mobile() -> Call:
    """A client calls alice's extension 201: her desk phone does not answer, her mobile does.
    The session both benchmarks measure (bench/agi, bench/deposit), as a fresh Call."""
    return Call(script="route", args=("201",), extension="201", dnid="201",
                dials=["noanswer", "answer"])


DESK_THEN_MOBILE = Answers(desk_then_mobile())


async def quick_session(port: int, answers: Answers = DESK_THEN_MOBILE, *,
                        host: str = "127.0.0.1", lines: list[bytes] | None = None) -> int:
    """One FastAGI session answered from `answers`; returns the number of commands.

    For load, not for checking: nothing is compared or recorded (except into `lines`),
    and the HANGUP Asterisk writes once the server has closed is left out, since no
    server reads it.
    """
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(answers.env)
    reply = answers.session()
    n = 0
    try:
        while line := await reader.readline():
            if lines is not None:
                lines.append(line)
            n += 1
            writer.write(reply(line))
    finally:
        writer.close()
    return n
