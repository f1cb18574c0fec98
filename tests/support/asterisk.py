"""A private, real Asterisk for the tests: PJSIP on loopback, AMI, its own dialplan.

Why it is shaped so:

* The binaries come from ``../shared/asterisk/build-asterisk.sh`` (a pinned
  Asterisk built once and cached); ``MAILCALL_ASTERISK_PREFIX`` names the
  prefix (``make test`` sets it). The configuration starts from the verified
  templates of ``../shared/asterisk/test-instance`` (``@PREFIX@``, ``@ROOT@``,
  ``@AMI_PORT@``, ``@AMI_SECRET@``); everything the instance writes lives under
  one temporary root, so several instances (and the machine's own Asterisk, if
  any) never meet.
* Asterisk runs in the foreground (``-f``) as a child of the test process:
  stopping is ``core stop now`` and, if that does not end it within a few
  seconds, SIGKILL of that one process id. Nothing is left running.
* It starts in about a second, so a test module starts one (module-scoped
  fixture) and a test changes only the dialplan (:meth:`Asterisk.load_dialplan`,
  ``dialplan reload``), which is how an administrator changes it too.
* What Asterisk did is read from its own ``messages.log`` (verbose 3 and AGI
  debug: every dialplan step, every prompt played with its language, every AGI
  line in both directions): :meth:`Asterisk.mark` and :meth:`Asterisk.log_since`
  give one test's share of it.
* Phones and trunks are PJSIP endpoints whose AORs hold static contacts on
  loopback ports where sipp processes (tests/support/sipp.py) play the phones.
  Callers are told apart the way a real PBX does it: internal phones by the
  ``From`` user (``endpoint_identifier_user``), the trunk and the other entry
  points by their source address (127.0.0.2, 127.0.0.3, ... all loopback).
* RTP stays on loopback (``media_address``, ``bind_rtp_to_media_address``) in
  a random port range; ``strictrtp=no`` because sipp sends speech
  (``rtp_stream``) and DTMF (``play_dtmf``) from two different sockets.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PREFIX_ENV = "MAILCALL_ASTERISK_PREFIX"
BUILD_SCRIPT = Path("asterisk") / "build-asterisk.sh"
TEMPLATES = Path("asterisk") / "test-instance"


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (TCP by default, ``socket.SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_udp_port(host: str = "127.0.0.1") -> int:
    return free_port(socket.SOCK_DGRAM, host)


def find_prefix(shared: Path) -> Path:
    """The install prefix of the test Asterisk, or a RuntimeError saying what to do.

    ``MAILCALL_ASTERISK_PREFIX`` wins; without it the shared build script is
    asked (it answers at once when its cached build is there, and builds it
    otherwise, as ``make test`` does).
    """
    given = os.environ.get(PREFIX_ENV)
    if given:
        prefix = Path(given)
    else:
        script = shared / BUILD_SCRIPT
        if not script.is_file():
            raise RuntimeError(f"{PREFIX_ENV} is not set and {script} does not exist: run "
                               "`make test`, or set MAILCALL_SHARED to the shared folder")
        run = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
        lines = run.stdout.strip().splitlines()
        if run.returncode != 0 or not lines:
            raise RuntimeError(f"{script} failed (exit {run.returncode}):\n{run.stderr[-3000:]}")
        prefix = Path(lines[-1])
    binary = prefix / "sbin" / "asterisk"
    if not os.access(binary, os.X_OK):
        raise RuntimeError(f"no Asterisk at {binary} ({PREFIX_ENV}={given!r}): run "
                           f"`bash {shared / BUILD_SCRIPT}` and set {PREFIX_ENV} to the prefix "
                           "it prints on its last line")
    return prefix


@dataclass
class Endpoint:
    """One PJSIP endpoint of the test instance.

    ``port``: the loopback port of its static contact (where a sipp phone
    answers), or None for an endpoint that only calls in. ``match``: the source
    address that identifies it (``type=identify``); without one it is
    identified by the ``From`` user, its name. ``callerid``: a fixed caller ID
    (as docs/asterisk.md §8 advises for phones), or None to take the ``From``
    header as sent. ``mailboxes``: for unsolicited MWI NOTIFY (res_pjsip_mwi).
    """

    name: str
    context: str
    port: int | None = None
    match: str | None = None
    callerid: str | None = None
    mailboxes: str | None = None
    contact_host: str = "127.0.0.1"

    def conf(self, transport: str) -> str:
        lines = [f"[{self.name}]", "type=endpoint", f"transport={transport}",
                 f"context={self.context}", "disallow=all", "allow=ulaw", "direct_media=no",
                 "media_address=127.0.0.1", "bind_rtp_to_media_address=yes",
                 "dtmf_mode=rfc4733", "rtp_symmetric=no", "send_pai=no"]
        if self.callerid:
            lines.append(f"callerid={self.callerid}")
        if self.mailboxes:
            lines.append(f"mailboxes={self.mailboxes}")
        if self.port is not None:
            lines.append(f"aors={self.name}")
            lines += ["", f"[{self.name}]", "type=aor",
                      f"contact=sip:{self.name}@{self.contact_host}:{self.port}"]
            if self.mailboxes:
                lines.append(f"mailboxes={self.mailboxes}")
        if self.match:
            lines += ["", f"[{self.name}]", "type=identify", f"endpoint={self.name}",
                      f"match={self.match}"]
        return "\n".join(lines) + "\n"


PJSIP_HEAD = """\
[global]
type=global
user_agent=mailcall-test-asterisk
endpoint_identifier_order=ip,username

[transport-udp]
type=transport
protocol=udp
bind=127.0.0.1:{sip_port}

"""

# Modules that decline without a config of their own and only add errors to the log.
NOLOAD = ("pbx_dundi.so", "app_followme.so")


@dataclass
class Asterisk:
    """One running private Asterisk (see the module docstring)."""

    prefix: Path
    root: Path
    templates: Path
    endpoints: list[Endpoint] = field(default_factory=list)
    sip_port: int = field(default_factory=free_udp_port)
    ami_port: int = field(default_factory=free_port)
    ami_secret: str = field(default_factory=lambda: secrets.token_hex(12))
    rtp_start: int = field(default_factory=lambda: random.randrange(20000, 58000, 2))
    proc: subprocess.Popen | None = None

    # ------------------------------------------------------------ files

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def log_path(self) -> Path:
        return self.root / "log" / "messages.log"

    @property
    def binary(self) -> Path:
        return self.prefix / "sbin" / "asterisk"

    @property
    def sounds(self) -> Path:
        """Where the prompts are: ``sounds/en``, ``sounds/fr`` (Debian's core sounds)."""
        return self.prefix / "var" / "lib" / "asterisk" / "sounds"

    def endpoint(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if e.name == name)

    def write_config(self, extensions: str) -> None:
        for sub in ("etc", "var/lib", "var/spool", "run", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        subst = {"@PREFIX@": str(self.prefix), "@ROOT@": str(self.root),
                 "@AMI_PORT@": str(self.ami_port), "@AMI_SECRET@": self.ami_secret}
        for template in sorted(self.templates.glob("*.conf")):
            text = template.read_text()
            for key, value in subst.items():
                text = text.replace(key, value)
            (self.etc / template.name).write_text(text)
        with open(self.etc / "modules.conf", "a") as f:
            f.write("".join(f"noload = {m}\n" for m in NOLOAD))
        self.etc.joinpath("rtp.conf").write_text(
            f"[general]\nrtpstart={self.rtp_start}\nrtpend={self.rtp_start + 998}\n"
            "strictrtp=no\n")
        self.etc.joinpath("pjsip.conf").write_text(
            PJSIP_HEAD.format(sip_port=self.sip_port)
            + "\n".join(e.conf("transport-udp") for e in self.endpoints))
        # Config files whose absence makes modules complain or decline at start.
        for name in ("pjsip_notify.conf", "indications.conf", "features.conf", "ccss.conf",
                     "acl.conf", "udptl.conf", "cdr.conf", "cel.conf", "pjproject.conf"):
            path = self.etc / name
            if not path.exists():
                path.write_text("[general]\n" if name != "pjsip_notify.conf" else
                                "[clear-mwi]\nEvent=>message-summary\n"
                                "Content-type=>application/simple-message-summary\n"
                                "Content=>Messages-Waiting: no\n")
        (self.root / "var" / "lib" / "keys").mkdir(parents=True, exist_ok=True)
        self.write_extensions(extensions)

    def write_extensions(self, text: str) -> None:
        self.etc.joinpath("extensions.conf").write_text(text)

    def install(self, source: Path, name: str | None = None) -> Path:
        """Copy a file into Asterisk's etc/, as ``cp file /etc/asterisk/`` does."""
        target = self.etc / (name or source.name)
        shutil.copyfile(source, target)
        return target

    # ------------------------------------------------------------ process

    def start(self, extensions: str, timeout: float = 30.0) -> None:
        self.write_config(extensions)
        with open(self.root / "log" / "console.log", "ab") as out:  # the child keeps its copy
            self.proc = subprocess.Popen(
                [str(self.binary), "-C", str(self.conf), "-f", "-n", "-g"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        try:
            self._wait_booted(timeout)
        except BaseException:
            self.stop()  # never leave a half-started Asterisk behind the failing test
            raise

    def _wait_booted(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Asterisk exited with {self.proc.returncode} at start; "
                                   f"{self.log_path}:\n{self.log_tail()}")
            try:  # a loaded CI machine may take longer than one try: not booted yet
                run = self.rx("core waitfullybooted", timeout=5, check=False)
            except subprocess.TimeoutExpired:
                continue
            if run.returncode == 0 and "fully booted" in run.stdout:
                # Every AGI line, both ways, in messages.log: what Asterisk saw and answered.
                self.rx("agi set debug on")
                return
            time.sleep(0.1)
        raise RuntimeError(f"Asterisk did not boot within {timeout}s; log:\n{self.log_tail()}")

    def stop(self) -> None:
        """``core stop now``; SIGKILL of our own process if it is still there after 5 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired, OSError):
                self.rx("core stop now", timeout=5, check=False)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.proc = None

    def rx(self, command: str, timeout: float = 10.0,
           check: bool = True) -> subprocess.CompletedProcess[str]:
        """One CLI command (``asterisk -rx``)."""
        run = subprocess.run([str(self.binary), "-C", str(self.conf), "-rx", command],
                             capture_output=True, text=True, timeout=timeout, check=False)
        if check and run.returncode != 0:
            raise RuntimeError(f"asterisk -rx {command!r} failed ({run.returncode}): "
                               f"{run.stdout}{run.stderr}")
        return run

    def load_dialplan(self, extensions: str) -> None:
        """Write extensions.conf and ``dialplan reload`` (globals are cleared first)."""
        self.write_extensions(extensions)
        out = self.rx("dialplan reload").stdout
        if "Dialplan reloaded" not in out:
            raise RuntimeError(f"dialplan reload: {out}\n{self.log_tail()}")

    def channels(self) -> list[str]:
        """Names of the channels up right now."""
        out = self.rx("core show channels concise").stdout
        return [line.split("!", 1)[0] for line in out.splitlines() if "!" in line]

    def wait_no_channels(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.channels():
                return
            time.sleep(0.1)
        raise AssertionError(f"channels still up after {timeout}s: {self.channels()}")

    # ------------------------------------------------------------ log

    def mark(self) -> int:
        """Where the log ends now; pass it to :meth:`log_since`."""
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, mark: int) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(mark)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no messages.log)"

    def wait_log(self, pattern: str | re.Pattern[str], since: int,
                 timeout: float = 20.0) -> re.Match[str]:
        """The first match of `pattern` in the log written after `since`, waiting for it."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            found = regex.search(self.log_since(since))
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"Asterisk did not log {regex.pattern!r} within {timeout}s; "
                                     f"since the mark:\n{self.log_since(since)[-6000:]}")
            time.sleep(0.1)

    # ------------------------------------------------------------ AMI

    def ami(self) -> Ami:
        """A logged-in AMI connection (user ``mailcall``, :attr:`ami_secret`)."""
        return Ami("127.0.0.1", self.ami_port, "mailcall", self.ami_secret)


class Ami:
    """A small synchronous AMI client: one action at a time, events kept until read.

    Enough for Originate, MWIUpdate/MWIGet and waiting for an event; the
    protocol is lines ``Key: Value`` ending with an empty line (manager.c).
    """

    def __init__(self, host: str, port: int, username: str, secret: str,
                 timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline().decode().strip()
        self.events: list[dict[str, str]] = []
        self._n = 0
        reply = self.action("Login", Username=username, Secret=secret)
        if reply.get("Response") != "Success":
            raise RuntimeError(f"AMI login refused: {reply}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.action("Logoff")
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Ami:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read(self) -> dict[str, str]:
        message: dict[str, str] = {}
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("AMI connection closed")
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text:
                if message:
                    return message
                continue
            key, _, value = text.partition(":")
            message[key.strip()] = value.strip()

    def action(self, name: str, variables: Mapping[str, str] | None = None,
               **fields: str) -> dict[str, str]:
        """Send one action; return its response (events that arrive meanwhile are kept)."""
        self._n += 1
        action_id = f"t{self._n}"
        lines = [f"Action: {name}", f"ActionID: {action_id}"]
        lines += [f"{k}: {v}" for k, v in fields.items()]
        lines += [f"Variable: {k}={v}" for k, v in (variables or {}).items()]
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"AMI field with a line break: {line!r}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while True:
            message = self._read()
            if message.get("ActionID") == action_id and "Response" in message:
                return message
            self.events.append(message)

    def wait_event(self, predicate: Callable[[dict[str, str]], bool],
                   timeout: float = 30.0) -> dict[str, str]:
        """The first event (kept or new) for which `predicate` is true."""
        for event in self.events:
            if predicate(event):
                self.events.remove(event)
                return event
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                message = self._read()
            except TimeoutError:
                break
            if predicate(message):
                return message
            self.events.append(message)
        raise AssertionError(f"no matching AMI event within {timeout}s; seen: {self.events[-20:]}")


def dialplan_lines(markdown: str, first: str) -> str:
    """The fenced code block of `markdown` that starts with the line `first`."""
    for block in re.findall(r"```[a-z]*\n(.*?)```", markdown, re.S):
        if block.lstrip().startswith(first):
            return block
    raise AssertionError(f"no code block starting with {first!r}")


def render_globals(values: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    items = values.items() if isinstance(values, Mapping) else values
    out = []
    for key, value in items:
        if "\n" in key or "\n" in value or "=" in key:
            raise ValueError(f"global {key!r}={value!r} cannot be written in [globals]")
        out.append(f"{key}={value}")
    return "\n".join(out)
