"""Live fixtures: a real Asterisk, `mailcall serve`, a real Dovecot, sipp phones and callers.

One Asterisk per test module (``asterisk``, module scope: it boots in about a
second, and a test only changes its dialplan), and for each test (``live``, or
``live_factory(...)`` for a variant of the policy) a fresh Dovecot from
``dovecot_factory``, the Sieve scripts mailcall installs, a spool and a
greetings folder of its own and ``mailcall serve`` as a subprocess on a free
AGI port, delivering by LMTP into that Dovecot. The dialplan is reloaded for
each test so that ``MAILCALL_AGI`` and ``MAILCALL_SPOOL`` point at that test's
mailcall; it is the docs' own: docs/asterisk.md §4's ``[from-internal]`` and
``[from-trunk]`` block, copied verbatim, the ``[globals]`` the docs list, and
``#include "extensions-mailcall.conf"`` at the end, with the shipped file
copied next to it. Test-only entry contexts (``live-*``) come before the
include and say what they are for.

Everything runs as root here (CI too), so Asterisk can write into the spool's
``rec/`` and the greetings folders mailcall makes (2770); on a real system the
two users share the ``asterisk`` group (docs §2).

API for other live tests (the fixture objects' attributes and methods):

``asterisk`` (:class:`LiveAsterisk`): ``.ast`` the :class:`~tests.support.asterisk.Asterisk`
(``sip_port``, ``ami_port``, ``ami_secret``, ``ami()`` a logged-in AMI client,
``rx(cli)``, ``mark()``/``log_since(mark)``/``wait_log(regex, mark)`` on
messages.log), ``phone_port[ext]``, ``load(globals, extra=...)``.
Phones 200-206 are endpoints named by their extension, ``callerid`` fixed,
``mailboxes=<ext>@mailcall`` (MWI NOTIFY goes to the sipp phone at
``phone_port[ext]``; ``Live.phone(ext, "answer")`` keeps every message it got).

``live`` (:class:`Live`): ``phone(ext, behaviour)`` starts a sipp phone
(``answer``, ``busy``, ``ringout``); ``call(to, steps, via=..., from_user=...,
from_name=...)`` places a sipp call and returns the finished
:class:`~tests.support.sipp.Sipp` (``final_code()``, ``received()``);
``fax(number, tiff)`` sends a fax with SendFAX from a Local channel;
``mail(user, folder)`` waits for and parses the messages of an IMAP folder;
``asterisk_log()``/``mailcall_log()`` what each logged during this test;
``stop_mailcall()``/``start_mailcall()``; ``spool``, ``greetings``, ``agi_port``.
"""

from __future__ import annotations

import contextlib
import email
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy as email_policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailcall.core.policy.load import compile_text
from mailcall.sieve.commands import install
from tests.sieve.support import dovecot_plugin, make_socket_dir
from tests.support import REPO, sipp
from tests.support.asterisk import (
    Asterisk,
    Endpoint,
    dialplan_lines,
    find_prefix,
    free_port,
    free_udp_port,
    render_globals,
)
from tests.support.dovecot import Dovecot, imap_name, listed_names

HERE = Path(__file__).resolve().parent
POLICY = HERE / "policy.toml"
SNIPPET = REPO / "contrib" / "asterisk" / "extensions-mailcall.conf"
DOCS = REPO / "docs" / "asterisk.md"
PHONES = {"200": '"Accueil" <200>', "201": '"Alice Martin" <201>',
          "202": '"Bernard Petit" <202>', "203": '"Carole Dubois" <203>',
          "205": '"Emma Laurent" <205>', "206": '"Fanny Roux" <206>'}
"""Extension -> fixed caller ID of its PJSIP endpoint (docs/asterisk.md §8)."""
TRUNK_IP = "127.0.0.2"
GUEST_IP = "127.0.0.3"
"""Where callers come from: the trunk (context from-trunk) and an internal phone
with no fixed caller ID (from-internal, the From user is its number)."""
ENTRY_IPS = {"live-route": "127.0.0.11", "live-fax": "127.0.0.12",
             "live-vm-s": "127.0.0.13", "live-vm-unavailable": "127.0.0.14",
             "live-vm-busy": "127.0.0.15", "live-vm-absence": "127.0.0.16",
             "live-misc": "127.0.0.17"}
"""Test-only entry points, one endpoint each (context = name), for the hostile-number tests."""
USERS = ("alice", "bernard", "carole", "emma", "fanny")
DOMAIN = "stockinox.example"
MAILCALL = Path(sys.executable).with_name("mailcall")

TEST_CONTEXTS = r"""
; ---- test-only entry points (tests/live); the docs' own contexts are above ----
; a fax line in E.164 (docs §4 shows the national form only)
[live-fax-e164]
exten => _+X.,1,Gosub(mailcall-fax,s,1(${EXTEN}))
 same => n,Hangup()

; the sending fax machine: a Local channel's first leg runs this
[live-fax-sender]
exten => s,1,NoOp(live fax sender: ${LIVE_FAX_FILE})
 same => n,SendFAX(${LIVE_FAX_FILE})
exten => h,1,NoOp(live fax sent: FAXSTATUS=${FAXSTATUS} FAXPAGES=${FAXPAGES})

; every entry, with whatever the caller put in the request URI (the docs' lines,
; with _. instead of _+X. so that the check, not the pattern, refuses)
[live-route]
exten => _.,1,Gosub(mailcall-route,s,1(${EXTEN}))
 same => n,Hangup()
exten => h,1,NoOp(end)
[live-fax]
exten => _.,1,Gosub(mailcall-fax,s,1(${EXTEN}))
 same => n,Hangup()
exten => h,1,NoOp(end)
[live-vm-s]
exten => _.,1,Gosub(mailcall-voicemail,s,1(${EXTEN}))
 same => n,Hangup()
exten => h,1,NoOp(end)
[live-vm-unavailable]
exten => _.,1,Gosub(mailcall-voicemail,unavailable,1(${EXTEN}))
 same => n,Hangup()
exten => h,1,NoOp(end)
[live-vm-busy]
exten => _.,1,Gosub(mailcall-voicemail,busy,1(${EXTEN}))
 same => n,Hangup()
exten => h,1,NoOp(end)
[live-vm-absence]
exten => _.,1,Gosub(mailcall-voicemail,absence,1(${EXTEN}))
 same => n,Hangup()
exten => h,1,NoOp(end)
"""


def docs_contexts() -> str:
    """docs/asterisk.md §4's [from-internal]/[from-trunk] block, exactly as written there."""
    return dialplan_lines(DOCS.read_text(), "[from-internal]")


def extensions_conf(global_vars: Mapping[str, str], extra: str = "") -> str:
    """The test instance's extensions.conf: docs §4 layout, include at the end."""
    return ("[general]\nstatic=yes\nwriteprotect=no\nclearglobalvars=yes\n\n"
            f"[globals]\n{render_globals(global_vars)}\n\n"
            f"{docs_contexts()}\n{TEST_CONTEXTS}\n{extra}\n"
            '#include "extensions-mailcall.conf"\n')


# ------------------------------------------------------------------ Asterisk


@dataclass
class LiveAsterisk:
    """The module's Asterisk, its endpoints and the ports of its phones."""

    ast: Asterisk
    phone_port: dict[str, int]
    phone_media: dict[str, int]

    def load(self, global_vars: Mapping[str, str], extra: str = "") -> None:
        self.ast.install(SNIPPET)  # cp contrib/asterisk/extensions-mailcall.conf /etc/asterisk/
        self.ast.load_dialplan(extensions_conf(global_vars, extra))


@pytest.fixture(scope="session")
def asterisk_prefix(shared_dir: Path) -> Path:
    try:
        return find_prefix(shared_dir)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def asterisk(asterisk_prefix: Path, shared_dir: Path) -> Iterator[LiveAsterisk]:
    if not sipp.available():
        pytest.fail(f"sipp not found at {sipp.SIPP}: apt-get install sip-tester "
                    "(.ci/apt-packages.txt)")
    # Not under pytest's tmp dir: the control socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="mailcall-ast-"))
    ports = {ext: free_udp_port() for ext in PHONES}
    media = {ext: free_udp_port() for ext in PHONES}
    endpoints = [Endpoint(ext, "from-internal", port=ports[ext], callerid=cid,
                          mailboxes=f"{ext}@mailcall") for ext, cid in PHONES.items()]
    endpoints.append(Endpoint("trunk", "from-trunk", match=TRUNK_IP))
    endpoints.append(Endpoint("guest", "from-internal", match=GUEST_IP))
    endpoints += [Endpoint(name, name, match=ip) for name, ip in ENTRY_IPS.items()]
    ast = Asterisk(asterisk_prefix, root, shared_dir / "asterisk" / "test-instance",
                   endpoints=endpoints)
    (root / "etc").mkdir(parents=True, exist_ok=True)
    ast.install(SNIPPET)
    try:
        ast.start(extensions_conf({}))
    except RuntimeError as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(str(exc))
    live = LiveAsterisk(ast, ports, media)
    try:
        yield live
    finally:
        ast.stop()
        if not os.environ.get("MAILCALL_KEEP_LIVE"):
            shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------ media


@dataclass
class Media:
    speech: Path
    """About 3 s of French speech (espeak-ng), 8 kHz mu-law WAV: what callers say."""
    long_speech: Path
    """About 8 s: a caller who hangs up before the end."""
    fax_1page: Path
    fax_2pages: Path
    greetings: Path
    """Generated greetings of tests/live/policy.toml (``mailcall greetings generate``)."""

    def speech_seconds(self, which: Path | None = None) -> float:
        return sipp.mulaw_duration_ms(which or self.speech) / 1000


def _espeak(text: str, target: Path) -> Path:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is not installed (apt-get install espeak-ng sox; "
                    ".ci/apt-packages.txt): the live tests speak with it")
    raw = target.with_suffix(".espeak.wav")
    subprocess.run([espeak, "-v", "fr", "-s", "150", "-w", str(raw), text], check=True,
                   capture_output=True)
    return sipp.mulaw_wav(raw, target)


@pytest.fixture(scope="session")
def live_media(shared_dir: Path) -> Iterator[Media]:
    work = Path(tempfile.mkdtemp(prefix="mailcall-media-"))
    work.chmod(0o755)
    speech = _espeak("Bonjour Alice, c'est Bernard de la société Stock Inox. "
                     "Rappelez-moi demain.", work / "speech.wav")
    long_speech = _espeak("Bonjour Alice, c'est Bernard de la société Stock Inox. Je vous "
                          "appelle au sujet de la commande de tubes en acier, livrée hier. "
                          "Rappelez-moi demain matin avant midi, merci.",
                          work / "long-speech.wav")
    one = shared_dir / "asterisk" / "media" / "fax-received-g3.tif"
    two = work / "fax-2pages.tif"
    tiffcp = shutil.which("tiffcp")
    if tiffcp is None:
        pytest.fail("tiffcp is not installed (apt-get install libtiff-tools)")
    subprocess.run([tiffcp, str(one), str(one), str(two)], check=True, capture_output=True)
    greetings = work / "greetings"
    gen = subprocess.run([str(MAILCALL), "greetings", "generate", "--policy", str(POLICY),
                          "--greetings-dir", str(greetings)], capture_output=True, text=True,
                         check=False)
    if gen.returncode != 0:
        pytest.fail(f"mailcall greetings generate failed: {gen.stdout}{gen.stderr}")
    yield Media(speech, long_speech, one, two, greetings)
    shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------------ one test


def policy_text(lmtp_port: int, server: Mapping[str, object] | None = None,
                edit: Callable[[str], str] | None = None) -> str:
    text = POLICY.read_text()
    if edit is not None:
        text = edit(text)
    lines = ["", "[delivery]", 'method = "lmtp"', f'address = "127.0.0.1:{lmtp_port}"']
    if server:
        lines += ["", "[server]"]
        for key, value in server.items():
            lines.append(f"{key} = {value!r}".replace("'", '"') if isinstance(value, str)
                         else f"{key} = {value}")
    return text + "\n".join(lines) + "\n"


@dataclass
class Live:
    """One test's mailcall, Dovecot, phones and calls (see the module docstring)."""

    asterisk: LiveAsterisk
    dovecot: Dovecot
    work: Path
    media: Media
    policy_path: Path
    sieve_socket: Path
    global_vars: dict[str, str]
    agi_port: int = field(default_factory=free_port)
    mailcall: subprocess.Popen | None = None
    started: list[sipp.Sipp] = field(default_factory=list)
    mark: int = 0
    _n: int = 0

    @property
    def ast(self) -> Asterisk:
        return self.asterisk.ast

    @property
    def spool(self) -> Path:
        return self.work / "spool"

    @property
    def greetings(self) -> Path:
        return self.work / "greetings"

    @property
    def mailcall_log_path(self) -> Path:
        return self.work / "mailcall.log"

    # ---------------------------------------------------------- mailcall

    def start_mailcall(self, timeout: float = 30.0) -> None:
        with open(self.mailcall_log_path, "ab") as out:
            self.mailcall = subprocess.Popen(
                [str(MAILCALL), "serve", "--policy", str(self.policy_path),
                 "--agi-listen", f"127.0.0.1:{self.agi_port}", "--spool-dir", str(self.spool),
                 "--greetings-dir", str(self.greetings), "--sieve-socket", str(self.sieve_socket)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "mailcall serving" in self.mailcall_log():
                return
            if self.mailcall.poll() is not None:
                break
            time.sleep(0.05)
        pytest.fail(f"mailcall serve did not start (exit {self.mailcall.poll()}); its log:\n"
                    f"{self.mailcall_log()[-5000:]}")

    def stop_mailcall(self, timeout: float = 40.0) -> int | None:
        """SIGTERM (mailcall lets calls finish), SIGKILL after `timeout`; its exit code."""
        proc, self.mailcall = self.mailcall, None
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        return proc.returncode

    def terminate_mailcall(self) -> None:
        """SIGTERM without waiting: mailcall is stopping while the test goes on."""
        if self.mailcall is not None and self.mailcall.poll() is None:
            os.kill(self.mailcall.pid, signal.SIGTERM)

    def mailcall_log(self) -> str:
        try:
            return self.mailcall_log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def asterisk_log(self) -> str:
        return self.ast.log_since(self.mark)

    def wait_asterisk_log(self, pattern: str, timeout: float = 20.0) -> str:
        return self.ast.wait_log(pattern, self.mark, timeout)[0]

    # ---------------------------------------------------------- phones, calls

    def _name(self, what: str) -> str:
        self._n += 1
        return f"{what}-{self._n}"

    def phone(self, ext: str, behaviour: str, **kw: int) -> sipp.Sipp:
        """Start the sipp phone of extension `ext` (runs until the test ends)."""
        proc = sipp.start_sipp(self._name(f"phone{ext}-{behaviour}"),
                               sipp.phone_scenario(behaviour, **kw), self.work / "sipp",
                               local_ip="127.0.0.1", port=self.asterisk.phone_port[ext],
                               media_port=self.asterisk.phone_media[ext], calls=None,
                               timeout_s=None)
        self.started.append(proc)
        time.sleep(0.15)  # bound its port before Asterisk sends anything
        if proc.proc is not None and proc.proc.poll() is not None:
            pytest.fail(f"sipp phone {ext} ended at once:\n{proc.output.read_text()}")
        return proc

    def call(self, to: str, steps: Sequence[sipp.Step] = (), *, via: str = "trunk",
             from_user: str = "+33611111111", from_name: str | None = "Client Dupont",
             wait: bool = True, timeout: float = 90.0, extra_headers: str = "") -> sipp.Sipp:
        """Call `to` from the trunk (``via="trunk"``), an internal phone (``via="201"``:
        its endpoint, From user 201), the guest phone (``"guest"``: no fixed caller ID)
        or a test entry (``"live-route"``...); wait for the end unless `wait` is False."""
        if via == "trunk":
            ip = TRUNK_IP
        elif via == "guest":
            ip = GUEST_IP
        elif via in ENTRY_IPS:
            ip = ENTRY_IPS[via]
        elif via in PHONES:
            ip, from_user = "127.0.0.1", via
        else:
            raise ValueError(f"via={via!r}")
        scenario = sipp.caller_scenario(list(steps), from_user=from_user, from_name=from_name,
                                        to_user=to, extra_headers=extra_headers)
        proc = sipp.start_sipp(self._name("caller"), scenario, self.work / "sipp", local_ip=ip,
                               port=free_udp_port(ip), media_port=free_udp_port(ip),
                               remote=f"127.0.0.1:{self.ast.sip_port}",
                               timeout_s=int(timeout))
        self.started.append(proc)
        if wait:
            proc.wait(timeout + 10)
        return proc

    def calls(self, numbers: Sequence[str], steps: Sequence[sipp.Step] = (), *, via: str,
              rate: int = 20, timeout: float = 120.0) -> sipp.Sipp:
        """One sipp that calls each of `numbers` (request-URI users), `rate` a second,
        from the test entry `via`; see :meth:`tests.support.sipp.Sipp.outcomes`."""
        ip = ENTRY_IPS.get(via) or {"trunk": TRUNK_IP, "guest": GUEST_IP}[via]
        name = self._name("bulk")
        inf = sipp.numbers_file(self.work / f"{name}.csv", list(numbers))
        scenario = sipp.caller_scenario(list(steps), from_user="+33611111111",
                                        from_name="Client Dupont", to_user=None)
        proc = sipp.start_sipp(name, scenario, self.work / "sipp", local_ip=ip,
                               port=free_udp_port(ip), media_port=free_udp_port(ip),
                               remote=f"127.0.0.1:{self.ast.sip_port}", calls=len(numbers),
                               inf=inf, rate=rate, timeout_s=int(timeout))
        self.started.append(proc)
        proc.wait(timeout + 10)
        return proc

    def fax(self, number: str, tiff: Path, *, context: str = "from-trunk",
            caller: str = '"Fax Dupont" <+33155500011>', timeout: float = 120.0) -> None:
        """A fax machine calls `number`@`context`: a Local channel whose first leg runs
        SendFAX (``[live-fax-sender]``); returns when both legs are gone."""
        with self.ast.ami() as ami:
            reply = ami.action("Originate", variables={"LIVE_FAX_FILE": str(tiff)},
                               Channel=f"Local/{number}@{context}", Context="live-fax-sender",
                               Exten="s", Priority="1", CallerID=caller, Timeout="30000",
                               Async="true")
            assert reply.get("Response") == "Success", reply
            ami.wait_event(lambda e: e.get("Event") == "OriginateResponse", timeout=40)
        self.wait_idle(timeout)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until Asterisk has no channel up (every call, fax and dial leg over)."""
        self.ast.wait_no_channels(timeout)

    # ---------------------------------------------------------- mailbox

    def mail(self, user: str, folder: str = "INBOX", count: int = 1,
             timeout: float = 30.0) -> list[EmailMessage]:
        """The messages of `user`'s `folder`, once there are at least `count` of them."""
        address = f"{user}@{DOMAIN}"
        deadline = time.monotonic() + timeout
        raw: list[bytes] = []
        while time.monotonic() < deadline:
            raw = self.dovecot.fetch_all(address, folder)
            if len(raw) >= count:
                break
            time.sleep(0.2)
        assert len(raw) >= count, (
            f"{len(raw)} message(s) in {address}'s {folder}, expected {count}; folders: "
            f"{self.dovecot.mailboxes(address)}\nmailcall log:\n{self.mailcall_log()[-4000:]}\n"
            f"Dovecot log:\n{self.dovecot.log_text()[-2000:]}")
        return [email.message_from_bytes(m, policy=email_policy.default) for m in raw]

    def all_mail(self, user: str) -> dict[str, int]:
        """Folder -> number of messages, for every folder of `user`."""
        conn = self.dovecot.imap(f"{user}@{DOMAIN}")
        try:
            _typ, listed = conn.list()
            out = {}
            for name in listed_names(listed):
                _typ, data = conn.status(imap_name(name), "(MESSAGES)")
                out[name] = int(re.search(rb"MESSAGES (\d+)", data[0])[1])
            return out
        finally:
            conn.logout()

    # ---------------------------------------------------------- end

    def close(self) -> None:
        for proc in self.started:
            proc.stop()
        with contextlib.suppress(Exception):
            self.ast.rx("channel request hangup all", check=False)
        self.stop_mailcall(timeout=10)


def _cleanup(work: Path) -> None:
    if not os.environ.get("MAILCALL_KEEP_LIVE"):
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def live_factory(asterisk: LiveAsterisk, dovecot_factory, live_media: Media,
                 request) -> Iterator[Callable[..., Live]]:
    """``live_factory(server={...}, edit=fn, global_vars={...}, mailcall=True, dialplan="",
    dovecot_extra=fn)``: `server` keys for the policy's [server], `edit` rewrites the
    policy text, `global_vars` are added to [globals], `dialplan` contexts before the
    include, `mailcall` False leaves mailcall stopped, `dovecot_extra(work)` more
    Dovecot configuration (a master passdb whose files it writes in `work`)."""
    made: list[Live] = []

    def make(server: Mapping[str, object] | None = None,
             edit: Callable[[str], str] | None = None,
             global_vars: Mapping[str, str] | None = None, mailcall: bool = True,
             dialplan: str = "", dovecot_extra: Callable[[Path], str] | None = None) -> Live:
        # Dovecot's mail processes (uid 5000) read the Sieve scripts: not under 0700 dirs.
        work = Path(tempfile.mkdtemp(prefix="mailcall-live-"))
        work.chmod(0o755)
        scripts = work / "sieve"
        dovecot = dovecot_factory(plugin=dovecot_plugin(scripts, None),
                                  users=[f"{u}@{DOMAIN}" for u in USERS],
                                  extra=dovecot_extra(work) if dovecot_extra else "")
        sieve_socket = make_socket_dir(dovecot.base_dir) / "mailcall"
        text = policy_text(dovecot.lmtp_port, server, edit)
        policy_path = work / "policy.toml"
        policy_path.write_text(text)
        install(compile_text(text), scripts, None, str(sieve_socket), dovecot.conf)
        # docs/asterisk.md §2: the admin makes the spool (2750), its rec/ (2770), where
        # ReceiveFAX writes before mailcall hears of the call, and the greetings (2770).
        (work / "spool").mkdir(mode=0o2750)
        (work / "spool" / "rec").mkdir(mode=0o2770)
        shutil.copytree(live_media.greetings, work / "greetings")
        (work / "greetings").chmod(0o2770)
        live = Live(asterisk, dovecot, work, live_media, policy_path, sieve_socket, {})
        live.global_vars = {"MAILCALL_AGI": f"agi://127.0.0.1:{live.agi_port}",
                            "MAILCALL_SPOOL": str(live.spool), **(global_vars or {})}
        asterisk.load(live.global_vars, dialplan)
        made.append(live)
        live.mark = asterisk.ast.mark()
        if mailcall:
            live.start_mailcall()
        return live

    yield make
    failed = getattr(request.node, "rep_call", None)
    for live in made:
        live.close()
        if (failed is not None and failed.failed) or os.environ.get("MAILCALL_LIVE_VERBOSE"):
            print(f"\n--- mailcall log ({live.work}) ---\n{live.mailcall_log()[-6000:]}")
            print(f"\n--- Asterisk log since the test began ---\n{live.asterisk_log()[-8000:]}")
        _cleanup(live.work)
    with contextlib.suppress(AssertionError):
        asterisk.ast.wait_no_channels(5)


@pytest.fixture
def live(live_factory) -> Live:
    return live_factory()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.asterisk)
            item.add_marker(pytest.mark.dovecot)
