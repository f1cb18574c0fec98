"""Record what a real Asterisk says on AMI, byte for byte, into tests/ami/traces/*.jsonl.

Run as root from the repository: ``.venv/bin/python -m tests.ami.record_traces``. It
starts a private Asterisk from ../shared/asterisk/test-instance (prefix printed by
build-asterisk.sh), plays a few scripted AMI sessions and keeps every chunk as it
came off the socket (chunk boundaries included), so the parser tests replay reality.

Line 1 of each file is a header; then ``{"dir": "asterisk"|"client", "t_ms": ...,
"data": "..."}`` with the bytes as latin-1 text (exact round trip).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import SHARED

HERE = Path(__file__).resolve().parent
SECRET = "trace-secret-0000"  # the instance lives for the recording only


def prefix() -> str:
    out = subprocess.run(["bash", str(SHARED / "asterisk" / "build-asterisk.sh")],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().splitlines()[-1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(pfx: str, root: Path, ami_port: int) -> None:
    for d in ("etc", "var/lib", "var/spool", "run", "log"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for name in ("asterisk.conf", "modules.conf", "logger.conf", "manager.conf"):
        text = (SHARED / "asterisk" / "test-instance" / name).read_text()
        text = (text.replace("@PREFIX@", pfx).replace("@ROOT@", str(root))
                .replace("@AMI_PORT@", str(ami_port)).replace("@AMI_SECRET@", SECRET))
        (root / "etc" / name).write_text(text)
    (root / "etc" / "pjsip.conf").write_text("")
    (root / "etc" / "extensions.conf").write_text("[general]\n")
    subprocess.run([f"{pfx}/sbin/asterisk", "-C", str(root / "etc/asterisk.conf"), "-F", "-n"],
                   check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = subprocess.run([f"{pfx}/sbin/asterisk", "-C", str(root / "etc/asterisk.conf"),
                            "-rx", "core waitfullybooted"], capture_output=True, timeout=30)
        if r.returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("Asterisk did not boot")


class Recorder:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.t0 = time.monotonic()
        self.rows: list[dict] = []
        self.buf = b""

    def _t(self) -> float:
        return round((time.monotonic() - self.t0) * 1000, 1)

    def read_until(self, marker: bytes, timeout: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.buf:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.rows.append({"dir": "asterisk", "t_ms": self._t(),
                              "data": chunk.decode("latin-1")})
            self.buf += chunk
        head, _, self.buf = self.buf.partition(marker)
        return head

    def send(self, data: bytes) -> None:
        self.rows.append({"dir": "client", "t_ms": self._t(), "data": data.decode("latin-1")})
        self.sock.sendall(data)

    def action(self, text: str, until: bytes) -> None:
        self.send(text.replace("\n", "\r\n").encode() + b"\r\n")
        self.read_until(until)

    def save(self, name: str, description: str) -> None:
        self.sock.close()
        with open(HERE / "traces" / f"{name}.jsonl", "w") as f:
            f.write(json.dumps({"scenario": name, "description": description,
                                "recorded_with": "Asterisk GIT-master-f0c1c1a7b7"}) + "\n")
            for row in self.rows:
                f.write(json.dumps(row) + "\n")


def main() -> int:
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 1
    pfx = prefix()
    root = Path(tempfile.mkdtemp(prefix="mailcall-ami-trace-"))
    port = free_port()
    start(pfx, root, port)
    try:
        r = Recorder(port)
        r.read_until(b"\r\n")
        r.action("Action: Login\nActionID: l1\nUsername: mailcall\nSecret: " + SECRET +
                 "\nEvents: system\n", b"Status: Fully Booted\r\n\r\n")
        r.action("Action: Ping\nActionID: p1\n", b"\r\n\r\n")
        r.action("Action: MWIUpdate\nActionID: u1\nMailbox: alice@mailcall\nNewMessages: 1\n"
                 "OldMessages: 0\n", b"\r\n\r\n")
        r.action("Action: MWIUpdate\nActionID: u2\nMailbox: bob@mailcall\nNewMessages: 0\n"
                 "OldMessages: 3\n", b"\r\n\r\n")
        r.action("Action: MWIGet\nActionID: g1\nMailbox: alice@mailcall\n",
                 b"EventList: Complete")
        r.read_until(b"\r\n\r\n")
        r.action("Action: MWIGet\nActionID: g2\nMailbox: /@mailcall$/\n", b"EventList: Complete")
        r.read_until(b"\r\n\r\n")
        r.action("Action: MWIGet\nActionID: g3\nMailbox: nobody@mailcall\n",
                 b"EventList: Complete")
        r.read_until(b"\r\n\r\n")
        r.action("Action: MWIUpdate\nActionID: u3\nMailbox: alice@mailcall\nNewMessages: x\n",
                 b"\r\n\r\n")
        r.action("Action: NoSuchAction\nActionID: n1\n", b"\r\n\r\n")
        r.action("Action: MWIDelete\nActionID: d1\nMailbox: bob@mailcall\n", b"\r\n\r\n")
        r.action("Action: Logoff\nActionID: o1\n", b"\r\n\r\n")
        r.read_until(b"\0", timeout=2)  # until Asterisk closes
        r.save("session", "login (FullyBooted follows), Ping, MWIUpdate x2, MWIGet of one, "
               "of a /regex/, of an unknown mailbox, a bad count, an unknown action, "
               "MWIDelete, Logoff")

        r = Recorder(port)
        r.read_until(b"\r\n")
        r.action("Action: Login\nActionID: l1\nUsername: mailcall\nSecret: wrong\n", b"\r\n\r\n")
        r.read_until(b"\0", timeout=2)
        r.save("login-refused", "wrong secret: Response: Error after about 1 s; "
               "Asterisk keeps the connection open")

        r = Recorder(port)
        r.read_until(b"\r\n")
        r.action("Action: Login\nActionID: l1\nUsername: mailcall\nSecret: " + SECRET +
                 "\nEvents: system,call\n", b"Status: Fully Booted\r\n\r\n")
        r.action("Action: MWIUpdate\nActionID: u1\nMailbox: carol@mailcall\nNewMessages: 2\n"
                 "OldMessages: 1\n", b"Event: MessageWaiting")
        r.read_until(b"\r\n\r\n")
        subprocess.run([f"{pfx}/sbin/asterisk", "-C", str(root / "etc/asterisk.conf"),
                        "-rx", "core stop now"], capture_output=True, timeout=30)
        r.read_until(b"\0", timeout=5)
        r.save("events-shutdown", "login with Events: system,call; MWIUpdate raises "
               "MessageWaiting; then 'core stop now': Shutdown event and end of file")
    finally:
        subprocess.run([f"{pfx}/sbin/asterisk", "-C", str(root / "etc/asterisk.conf"),
                        "-rx", "core stop now"], capture_output=True, timeout=30)
        time.sleep(1)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
