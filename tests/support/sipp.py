"""sipp as the phones and the callers of the live tests (Debian's sip-tester, sipp 3.6).

Why it is shaped so:

* A phone is a sipp UAS on its own loopback port, named in its endpoint's AOR
  (``contact=sip:201@127.0.0.1:PORT``): it answers, answers busy (486), or
  rings until Asterisk cancels (CANCEL, 200, 487), for as many calls as come,
  and answers NOTIFY/OPTIONS by itself (``-aa``). Every SIP message it saw is
  kept (``-trace_msg``), so a test can say which phone rang and what it was
  sent (``INVITE``, MWI ``NOTIFY``).
* A caller is a sipp UAC placing one call, scripted as :class:`Step` objects:
  pause, speak (``<exec rtp_stream="file,1,0"/>``: the file is sent as it is,
  so it must be 8 kHz mu-law, see :func:`mulaw_wav`), type digits
  (``<exec play_dtmf="...">``: RFC 4733 events, payload type 96 as sipp sends
  them), hang up, or wait for Asterisk to hang up. Its ``From`` display name
  and user and the request-URI user are what a hostile caller controls, so
  they are taken as text and percent-encoded (:func:`sip_user`), which PJSIP
  decodes: ``%0d%0a`` arrives as CR LF, as from a real attacker.
* sipp reads ``[word]`` as its own keywords, so text never goes into a
  scenario unencoded: URI parts are percent-encoded, display names refuse
  ``[``/``]`` (quote them in a test with ``%5b`` in the user part instead).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
FINAL_CODES = (400, 403, 404, 408, 410, 415, 420, 480, 481, 484, 486, 487, 488, 500, 501,
               502, 503, 504, 603, 604)
SAFE_USER = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-_.!~*'()&=$,/")


def available() -> bool:
    return os.access(SIPP, os.X_OK)


def sip_user(text: str) -> str:
    """`text` as the user part of a SIP URI: RFC 3261 characters kept, the rest %XX (UTF-8)."""
    return "".join(ch if ch in SAFE_USER else "".join(f"%{b:02X}" for b in ch.encode())
                   for ch in text)


def display_name(text: str) -> str:
    """`text` as a quoted display name (RFC 3261 quoted-string: ``\\`` and ``"`` escaped)."""
    if any(c in text for c in "[]\r\n"):
        raise ValueError(f"display name {text!r}: no [ ] (sipp keywords) or line breaks")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ------------------------------------------------------------------ steps


@dataclass(frozen=True)
class Step:
    def xml(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Pause(Step):
    ms: int

    def xml(self) -> str:
        return f'  <pause milliseconds="{int(self.ms)}"/>\n'


@dataclass(frozen=True)
class Speak(Step):
    """Send `wav` (8 kHz mu-law WAV) as RTP, then wait as long as it lasts (+ `after_ms`),
    or only `for_ms` (the next step, a Hangup say, then cuts the speech short)."""

    wav: Path
    after_ms: int = 0
    for_ms: int | None = None

    def xml(self) -> str:
        ms = (mulaw_duration_ms(self.wav) + self.after_ms if self.for_ms is None
              else self.for_ms)
        return (f'  <nop><action><exec rtp_stream="{self.wav},1,0"/></action></nop>\n'
                f'  <pause milliseconds="{ms}"/>\n')


@dataclass(frozen=True)
class Dtmf(Step):
    """RFC 4733 digits, each `tone_ms` long with as much silence after it."""

    digits: str
    tone_ms: int = 160
    after_ms: int = 200

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[0-9*#A-D]+", self.digits):
            raise ValueError(f"DTMF digits {self.digits!r}")

    def xml(self) -> str:
        ms = len(self.digits) * self.tone_ms * 2 + self.after_ms
        return (f'  <nop><action><exec play_dtmf="{self.digits},{self.tone_ms}"/></action></nop>\n'
                f'  <pause milliseconds="{ms}"/>\n')


@dataclass(frozen=True)
class Hangup(Step):
    """The caller hangs up (BYE)."""

    def xml(self) -> str:
        return ("  <send retrans=\"500\"><![CDATA[\n"
                "BYE @URI@ SIP/2.0\n" + _IN_DIALOG.replace("@CSEQ@", "2 BYE") +
                "  ]]></send>\n  <recv response=\"200\" timeout=\"5000\"/>\n")


@dataclass(frozen=True)
class AwaitHangup(Step):
    """Wait (at most `timeout_ms`) for Asterisk to hang up, and answer its BYE."""

    timeout_ms: int = 30000

    def xml(self) -> str:
        return (f'  <recv request="BYE" timeout="{self.timeout_ms}"/>\n'
                "  <send><![CDATA[\n" + _RESPONSE.replace("@STATUS@", "200 OK")
                + "  ]]></send>\n")


# ------------------------------------------------------------ scenarios
# @URI@, @FROM@, @CSEQ@, @STATUS@ are filled in with str.replace: caller text
# may hold braces, so no str.format on anything that holds it.

_SDP = """\
v=0
o=mailcall-test 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 96
a=rtpmap:0 PCMU/8000
a=rtpmap:96 telephone-event/8000
a=fmtp:96 0-16
a=ptime:20
"""

_IN_DIALOG = """\
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: @FROM@;tag=[pid]SIPpTag00[call_number]
To: <@URI@>[peer_tag_param]
Call-ID: [call_id]
CSeq: @CSEQ@
Contact: <sip:[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

"""

_RESPONSE = """\
SIP/2.0 @STATUS@
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port]>
Content-Length: 0

"""


def caller_scenario(steps: list[Step], *, from_user: str, from_name: str | None = None,
                    to_user: str | None, extra_headers: str = "") -> str:
    """A UAC that calls `to_user` (request-URI user) as ``From: from_name <sip:from_user@...>``.

    If Asterisk answers, the `steps` run; if it refuses the call (any final
    response in :data:`FINAL_CODES`), the ACK is sent and the scenario ends.
    `to_user` None: each call takes its (already encoded) user from the first
    field of the ``-inf`` file (:func:`numbers_file`).
    `extra_headers`: more header lines for the INVITE (each ending with a newline).
    """
    user = "[field0]" if to_user is None else sip_user(to_user)
    uri = f"sip:{user}@[remote_ip]:[remote_port]"
    from_ = (display_name(from_name) + " " if from_name is not None else "") + \
        f"<sip:{sip_user(from_user)}@[local_ip]:[local_port]>"
    if "[" in extra_headers.replace("[local_ip]", "").replace("[local_port]", ""):
        raise ValueError("extra headers: no [ ] (sipp keywords)")
    out = ['<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="mailcall caller">\n',
           '  <send retrans="500"><![CDATA[\n',
           "INVITE @URI@ SIP/2.0\n",
           "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n",
           "From: @FROM@;tag=[pid]SIPpTag00[call_number]\n",
           "To: <@URI@>\n",
           "Call-ID: [call_id]\nCSeq: 1 INVITE\nContact: <sip:[local_ip]:[local_port]>\n",
           "Max-Forwards: 70\n", extra_headers,
           "Content-Type: application/sdp\nContent-Length: [len]\n\n", _SDP,
           "  ]]></send>\n",
           '  <recv response="100" optional="true"/>\n',
           '  <recv response="180" optional="true"/>\n',
           '  <recv response="183" optional="true"/>\n']
    out += [f'  <recv response="{code}" optional="true" next="refused"/>\n'
            for code in FINAL_CODES]
    out += ['  <recv response="200" rtd="true"/>\n',
            "  <send><![CDATA[\n", "ACK @URI@ SIP/2.0\n",
            _IN_DIALOG.replace("@CSEQ@", "1 ACK"), "  ]]></send>\n"]
    out += [step.xml() for step in steps]
    out += ['  <nop next="end"/>\n',
            '  <label id="refused"/>\n',
            "  <send><![CDATA[\n", "ACK @URI@ SIP/2.0\n",
            "[last_Via:]\n[last_From:]\n[last_To:]\n[last_Call-ID:]\nCSeq: 1 ACK\n",
            "Max-Forwards: 70\nContent-Length: 0\n\n", "  ]]></send>\n",
            '  <label id="end"/>\n</scenario>\n']
    # The caller's text last: nothing is replaced inside it afterwards.
    return "".join(out).replace("@URI@", uri).replace("@FROM@", from_)


def _send(message: str, status: str | None = None, retrans: bool = False) -> str:
    text = message.replace("@STATUS@", status) if status else message
    attr = ' retrans="500"' if retrans else ""
    return f"  <send{attr}><![CDATA[\n{text}  ]]></send>\n"


def phone_scenario(behaviour: str, *, answer_after_ms: int = 200,
                   hangup_after_ms: int | None = None) -> str:
    """A UAS phone: ``answer``, ``busy`` (486) or ``ringout`` (rings until cancelled).

    ``answer`` waits for the BYE, or sends its own after `hangup_after_ms`.
    """
    tagged = _RESPONSE.replace("[last_To:]", "[last_To:];tag=[pid]SIPpTag01[call_number]")
    # A phone that hangs up itself needs the caller's Contact for its BYE ([next_url]).
    # (and its From and To, kept in $1 and $2, for the BYE's To and From)
    invite = ('  <recv request="INVITE" rrs="true"><action>\n'
              '    <ereg regexp=".*" search_in="hdr" header="From:" assign_to="1"/>\n'
              '    <ereg regexp=".*" search_in="hdr" header="To:" assign_to="2"/>\n'
              '  </action></recv>\n' if hangup_after_ms is not None
              else '  <recv request="INVITE"/>\n')
    out = ['<?xml version="1.0" encoding="UTF-8" ?>\n<scenario name="mailcall phone">\n',
           invite, _send(_RESPONSE, "100 Trying")]
    if behaviour == "busy":
        out += [_send(tagged, "486 Busy Here"), '  <recv request="ACK"/>\n']
    elif behaviour == "ringout":
        out += [_send(tagged, "180 Ringing"), '  <recv request="CANCEL"/>\n',
                _send(_RESPONSE, "200 OK"),
                _send(tagged.replace("[last_CSeq:]", "CSeq: [last_cseq_number] INVITE"),
                      "487 Request Terminated"),
                '  <recv request="ACK"/>\n']
    elif behaviour == "answer":
        ok = tagged.replace("Content-Length: 0\n", "Content-Type: application/sdp\n"
                            "Content-Length: [len]\n\n" + _SDP).replace("\n\n" + _SDP + "\n",
                                                                      "\n\n" + _SDP)
        out += [_send(tagged, "180 Ringing"), f'  <pause milliseconds="{answer_after_ms}"/>\n',
                _send(ok, "200 OK", retrans=True), '  <recv request="ACK"/>\n']
        if hangup_after_ms is None:
            out += ['  <recv request="BYE"/>\n', _send(_RESPONSE, "200 OK")]
        else:
            out += [f'  <pause milliseconds="{hangup_after_ms}"/>\n',
                    _send("BYE [next_url] SIP/2.0\n"
                          "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n"
                          # our side of the dialog is the INVITE's To (with our tag)
                          "From: [$2];tag=[pid]SIPpTag01[call_number]\nTo: [$1]\n"
                          "[last_Call-ID:]\n"
                          "CSeq: 2 BYE\n"
                          "Max-Forwards: 70\nContent-Length: 0\n\n", retrans=True),
                    '  <recv response="200"/>\n']
    else:
        raise ValueError(f"phone behaviour {behaviour!r}: answer, busy or ringout")
    return "".join(out) + "</scenario>\n"


# ------------------------------------------------------------ processes


@dataclass
class Sipp:
    """One sipp process and what it saw."""

    name: str
    workdir: Path
    args: list[str]
    proc: subprocess.Popen | None = None
    started: float = field(default_factory=time.monotonic)

    @property
    def trace(self) -> Path:
        return self.workdir / f"{self.name}.messages.log"

    @property
    def output(self) -> Path:
        return self.workdir / f"{self.name}.out"

    def start(self) -> Sipp:
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen([SIPP, *self.args], stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         cwd=self.workdir, start_new_session=True)
        return self

    def wait(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"sipp {self.name} still running after {timeout}s; "
                                 f"messages:\n{self.messages()[-4000:]}") from None

    def stop(self) -> None:
        """Stop our sipp process (SIGTERM, then SIGKILL), if it still runs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=3)

    def messages(self) -> str:
        try:
            return self.trace.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def _traced(self, direction: str) -> list[str]:
        """The SIP messages of sipp's -trace_msg file whose header says `direction`."""
        out = []
        for part in re.split(r"^-{20,}.*$", self.messages(), flags=re.M):
            head, _, body = part.partition("\n\n")
            if f"message {direction}" in head:
                out.append(body.strip("\n"))
        return out

    def received(self) -> list[str]:
        """Every SIP message this sipp received, in order (start line first)."""
        return self._traced("received")

    def sent(self) -> list[str]:
        """Every SIP message this sipp sent, in order."""
        return self._traced("sent")

    def outcomes(self) -> dict[str, int | None]:
        """Request-URI user of each INVITE sent (as on the wire) -> its final response code."""
        def call_id(message: str) -> str:
            m = re.search(r"^Call-ID:\s*(\S+)", message, re.M | re.I)
            return m[1] if m else ""

        users = {}
        for message in self.sent():
            m = re.match(r"INVITE sip:(.*)@\S+ SIP/2\.0", message)
            if m:
                users[call_id(message)] = m[1]
        codes: dict[str, int] = {}
        for message in self.received():
            m = re.match(r"SIP/2\.0 (\d{3})", message)
            if m and int(m[1]) >= 200 and re.search(r"^CSeq:\s*1 INVITE", message, re.M | re.I):
                codes.setdefault(call_id(message), int(m[1]))
        return {user: codes.get(cid) for cid, user in users.items()}

    def requests(self, method: str) -> list[str]:
        return [m for m in self.received() if m.startswith(method + " ")]

    def final_code(self) -> int | None:
        """The final response to our INVITE (a caller), or None if none came."""
        for message in self.received():
            m = re.match(r"SIP/2\.0 (\d{3})", message)
            if m and int(m[1]) >= 200 and re.search(r"^CSeq:\s*1 INVITE", message, re.M | re.I):
                return int(m[1])
        return None


def numbers_file(path: Path, users: list[str]) -> Path:
    """An ``-inf`` file: one call per entry of `users`, in order (request-URI users)."""
    path.write_text("SEQUENTIAL\n" + "".join(sip_user(u) + ";\n" for u in users))
    return path


def start_sipp(name: str, scenario: str, workdir: Path, *, local_ip: str, port: int,
               media_port: int, remote: str | None = None, calls: int | None = 1,
               timeout_s: int | None = 120, inf: Path | None = None,
               rate: int | None = None) -> Sipp:
    """Write `scenario` and start sipp on it; `remote` ("127.0.0.1:5060") makes it a caller.

    `inf` with `calls` > 1: one call per line of the file, `rate` new calls a second.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"{name}.xml"
    path.write_text(scenario, encoding="utf-8")
    args = ["-sf", str(path), "-i", local_ip, "-p", str(port), "-mi", local_ip,
            "-mp", str(media_port), "-nostdin", "-trace_msg",
            "-message_file", str(workdir / f"{name}.messages.log"),
            "-trace_err", "-error_file", str(workdir / f"{name}.errors.log"),
            "-aa", "-max_recv_loops", "1000"]
    if calls is not None:
        args += ["-m", str(calls)]
    if timeout_s is not None:
        args += ["-timeout", f"{timeout_s}s", "-timeout_error"]
    if inf is not None:
        args += ["-inf", str(inf)]
    if rate is not None:
        args += ["-r", str(rate), "-l", str(rate)]
    if remote is not None:
        args += ["-s", "mailcall-test", remote]
    return Sipp(name, workdir, args).start()


def mulaw_duration_ms(wav: Path) -> int:
    """Length of an 8 kHz mu-law WAV written by :func:`mulaw_wav` (one byte per sample)."""
    data = wav.read_bytes()
    at = data.find(b"data")
    size = int.from_bytes(data[at + 4:at + 8], "little") if at >= 0 else len(data)
    return size // 8


def mulaw_wav(source: Path, target: Path) -> Path:
    """`source` (any WAV) as the 8 kHz mono mu-law WAV that sipp's rtp_stream sends as PCMU."""
    sox = shutil.which("sox")
    if sox is None:
        raise RuntimeError("sox is not installed (apt-get install sox; .ci/apt-packages.txt)")
    subprocess.run([sox, str(source), "-r", "8000", "-c", "1", "-e", "u-law", "-t", "wav",
                    str(target)], check=True, capture_output=True)
    return target
