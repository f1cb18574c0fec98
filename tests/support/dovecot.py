"""A private, real Dovecot for the tests: LMTP and IMAP on loopback, all state in one folder.

The configuration is the verified template of ``shared/dovecot/test-instance-root.conf``
(run as root, as CI does) with free ports and extra plugin settings the test asks for.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from imapclient import imap_utf7
from imapclient.response_parser import parse_response
from imapclient.util import chunk

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
DOVEADM = shutil.which("doveadm") or "/usr/bin/doveadm"
SIEVEC = shutil.which("sievec") or "/usr/bin/sievec"
MAIL_UID = 5000
PASSWORD = "secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available() -> bool:
    return Path(DOVECOT).exists() and os.geteuid() == 0


CONF = """\
base_dir = {root}/run
state_dir = {root}/state
instance_name = {name}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {lmtp_port}
  }}
  unix_listener lmtp {{
    mode = 0666
  }}
}}
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
protocol lda {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
{plugin}
}}
{extra}
"""


@dataclass
class Dovecot:
    """One running instance. Users are created with :meth:`add_user` (password "secret")."""

    root: Path
    plugin: dict[str, str] = field(default_factory=dict)
    extra: str = ""
    imap_port: int = field(default_factory=free_port)
    lmtp_port: int = field(default_factory=free_port)

    @property
    def conf(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def lmtp_socket(self) -> Path:
        return self.root / "run" / "lmtp"

    @property
    def base_dir(self) -> Path:
        return self.root / "run"

    def write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        plugin = "\n".join(f"  {k} = {v}" for k, v in self.plugin.items())
        self.conf.write_text(
            CONF.format(
                root=self.root,
                name=f"mailcall-test-{self.lmtp_port}",
                imap_port=self.imap_port,
                lmtp_port=self.lmtp_port,
                plugin=plugin,
                extra=self.extra,
            )
        )
        (self.root / "passwd").touch()

    def add_user(self, address: str) -> Path:
        home = self.root / "home" / address.split("@")[0]
        home.mkdir(parents=True, exist_ok=True)
        os.chown(home, MAIL_UID, MAIL_UID)
        with open(self.root / "passwd", "a") as f:
            f.write(f"{address}:{{PLAIN}}{PASSWORD}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        return home

    def start(self) -> None:
        self.write_config() if not self.conf.exists() else None
        subprocess.run([DOVECOT, "-c", str(self.conf)], check=True)
        self.wait_listening()

    def wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", self.lmtp_port), timeout=0.5
            ):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Dovecot did not listen on {self.lmtp_port}; log:\n{self.log_text()}")

    def stop(self) -> None:
        subprocess.run([DOVEADM, "-c", str(self.conf), "stop"], check=False, capture_output=True)
        pid_file = self.base_dir / "master.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Wait until the port is really free, so a restart can bind it again.
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.lmtp_port), timeout=0.2):
                    time.sleep(0.05)
            except OSError:
                return

    def reload(self) -> None:
        subprocess.run([DOVEADM, "-c", str(self.conf), "reload"], check=True)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def sievec(self, script: Path) -> subprocess.CompletedProcess[str]:
        """Compile a Sieve script with this instance's settings; raises with sievec's words."""
        return subprocess.run(
            [SIEVEC, "-c", str(self.conf), str(script)], check=True, capture_output=True, text=True
        )

    def lmtp_send(self, sender: str, recipients: list[str], message: bytes) -> dict:
        with smtplib.LMTP("127.0.0.1", self.lmtp_port) as lmtp:
            return lmtp.sendmail(sender, recipients, message)

    def imap(self, address: str) -> imaplib.IMAP4:
        conn = imaplib.IMAP4("127.0.0.1", self.imap_port)
        conn.login(address, PASSWORD)
        return conn

    def fetch_all(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """Every message in `mailbox`, raw, oldest first ([] when the mailbox does not exist)."""
        conn = self.imap(address)
        try:
            typ, _ = conn.select(imap_name(mailbox), readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.search(None, "ALL")
            out = []
            for num in data[0].split():
                typ, msg = conn.fetch(num, "(BODY.PEEK[])")
                out.append(msg[0][1])
            return out
        finally:
            conn.logout()

    def mailboxes(self, address: str) -> list[str]:
        """The user's mailbox names, as a mail client shows them (see :func:`listed_names`)."""
        conn = self.imap(address)
        try:
            _typ, data = conn.list()
        finally:
            conn.logout()
        return listed_names(data)


def listed_names(data: list) -> list[str]:
    """The mailbox names in imaplib's answer to LIST, decoded from modified UTF-7.

    A name comes as an atom (``INBOX``), a quoted string with escapes, a number or a
    literal (RFC 3501 §4, §7.2.2): imapclient's parser reads all four, where splitting
    the line on quotes does not.
    """
    items = [item for item in data if item not in (b"", None)]
    return [str(name) if isinstance(name, int) else imap_utf7.decode(name)
            for _flags, _delimiter, name in chunk(parse_response(items), 3)]


def imap_name(name: str) -> str:
    """`name` as an IMAP command argument: modified UTF-7, quoted, ``"`` and ``\\`` escaped
    (what :func:`listed_names` reads back)."""
    text = imap_utf7.encode(name).decode("ascii")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def master_passdb(folder: Path, user: str, password: str, *, hashed: bool = False,
                  file_name: str = "master.passwd") -> str:
    """Make `user` a master user, as contrib/dovecot/91-mailcall-mwi.conf and
    92-mailcall-phone.conf do: write its password file in `folder` and return the
    dovecot.conf lines for ``extra``.

    Logins from loopback only; ``pass = yes``: the user logged in as must exist too.
    `password` is written as ``{PLAIN}``, or as given when `hashed` (``doveadm pw``'s
    output, ``{SCHEME}...``).
    """
    stored = password if hashed else f"{{PLAIN}}{password}"
    path = folder / file_name
    path.write_text(f"{user}:{stored}::::::allow_nets=127.0.0.1/32\n")
    return f"""
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {path}
  master = yes
  pass = yes
}}
"""


def configure_private(plugin: dict[str, str] | None = None, users=("alice@example.test",),
                      extra: str = "", prefix: str = "mailcall-dovecot-",
                      root: Path | None = None) -> Dovecot:
    """A private Dovecot configured with `users`, not started: the caller may fill the
    homes first (a benchmark's thousands of Maildirs), then :meth:`Dovecot.start` it.

    `root` (default: a new folder named `prefix`...) holds all its state. Not under
    pytest's tmp dir: that is 0700 and Dovecot's auth process (user dovecot) must
    reach the passwd file.
    """
    if root is None:
        root = Path(tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)  # noqa: S103 - Dovecot processes must traverse it
    d = Dovecot(root=root, plugin=dict(plugin or {}), extra=extra)
    d.write_config()
    for u in users:
        d.add_user(u)
    return d


def start_private(plugin: dict[str, str] | None = None, users=("alice@example.test",),
                  extra: str = "", prefix: str = "mailcall-dovecot-",
                  root: Path | None = None) -> Dovecot:
    """Configure and start a private Dovecot with `users` (:func:`configure_private`);
    :meth:`Dovecot.stop` it, then remove its ``root``."""
    d = configure_private(plugin, users, extra, prefix, root)
    d.start()
    return d


class DovecotFactory:
    """Starts private Dovecots on demand and stops them all: the ``dovecot_factory``
    fixture, and the benchmarks that run the tests' harnesses outside pytest.

    ``factory(plugin={...}, users=[...], extra="...")`` starts one (:func:`configure_private`);
    `extra` given here is added to every instance's configuration.
    """

    def __init__(self, prefix: str = "mailcall-dovecot-", extra: str = "") -> None:
        self.prefix = prefix
        self.extra = extra
        self.started: list[Dovecot] = []

    def __call__(self, plugin: dict[str, str] | None = None, users=("alice@example.test",),
                 extra: str = "") -> Dovecot:
        d = configure_private(plugin, users, extra + self.extra, self.prefix)
        self.started.append(d)  # before start: one that fails to listen is stopped too
        d.start()
        return d

    def stop_all(self) -> None:
        """Stop every instance started and remove its folder."""
        while self.started:
            d = self.started.pop()
            d.stop()
            shutil.rmtree(d.root, ignore_errors=True)

    def __enter__(self) -> DovecotFactory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
