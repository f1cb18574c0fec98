"""The ``mailcall`` program for ``sieve_execute_bin_dir``: a process per message, for setups
without the socket (or while the daemon's socket is absent).

Dovecot forks it as the mail user with exactly HOME, USER, HOST, SENDER,
RECIPIENT and ORIG_RECIPIENT in the environment, the Sieve arguments as argv
and the ``:input`` string on stdin. It forwards the request to the running
daemon over the script protocol (see script_protocol.py) and relays the
answer: exit 0 for ``+``, 1 for ``-``. When the daemon is down it says so on
stderr (Dovecot logs it) and exits 1 at once: "false", Sieve goes on and the
mail is delivered. The whole run is bounded well inside
``sieve_execute_exec_timeout``.

This file uses the standard library only and is copied verbatim by ``mailcall
sieve install`` under the system interpreter (``/usr/bin/python3``): the mail
user may not be allowed to read mailcall's virtualenv, and importing nothing
else keeps start-up short.
"""

from __future__ import annotations

import os
import socket
import sys
import time

ENV_NAMES = ("USER", "HOME", "HOST", "SENDER", "RECIPIENT", "ORIG_RECIPIENT")
CONNECT_TIMEOUT = 0.25
TOTAL_TIMEOUT = 2.0
MAX_INPUT = 64 * 1024
MAX_REPLY = 64 * 1024
_ESCAPE_OF = {0x01: b"\x011", 0x09: b"\x01t", 0x0D: b"\x01r", 0x0A: b"\x01n", 0x00: b"\x010"}


def _escape(value: str) -> bytes:
    raw = value.encode("utf-8", errors="surrogateescape")
    return b"".join(_ESCAPE_OF.get(b, bytes((b,))) for b in raw)


def build_request(args: list[str], env: dict[str, str], data: bytes) -> bytes:
    """The request as Dovecot's program-client-remote.c sends it (empty arguments dropped)."""
    out = [b"VERSION\tscript\t4\t0\n"]
    out += [b"env_" + _escape(k) + b"=" + _escape(v) + b"\n" for k, v in env.items()]
    out.append(b"-\n")
    out += [_escape(a) + b"\n" for a in args if a]
    out.append(b"\n")
    out.append(data)
    return b"".join(out)


def ask(socket_path: str, args: list[str], env: dict[str, str], data: bytes,
        timeout: float = TOTAL_TIMEOUT) -> tuple[bool, bytes]:
    """One request to the daemon; raises OSError or ValueError when it cannot answer."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(min(CONNECT_TIMEOUT, timeout))
        sock.connect(socket_path)
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        sock.sendall(build_request(args, env, data))
        sock.shutdown(socket.SHUT_WR)
        reply = bytearray()
        while len(reply) <= MAX_REPLY:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    if reply.endswith(b"+\n"):
        return True, bytes(reply[:-2])
    if reply.endswith(b"-\n"):
        return False, bytes(reply[:-2])
    raise ValueError(f"incomplete answer ({len(reply)} bytes)")


def main(argv: list[str], socket_path: str) -> int:
    env = {name: os.environ[name] for name in ENV_NAMES if name in os.environ}
    data = b"" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.buffer.read(MAX_INPUT)
    try:
        ok, output = ask(socket_path, argv, env, data)
    except (OSError, ValueError) as exc:
        print(f"mailcall: daemon not reachable at {socket_path} ({exc}); answering false, "
              "the mail is delivered normally. Is `mailcall serve` running?", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(output)
    sys.stdout.flush()
    return 0 if ok else 1


def client_script(socket_path: str, python: str = "/usr/bin/python3") -> str:
    """The executable installed as ``<sieve_execute_bin_dir>/mailcall``: this very file."""
    if any(ch.isspace() for ch in python) or not python.startswith("/"):
        raise ValueError(f"interpreter {python!r}: need an absolute path without spaces")
    with open(__file__, encoding="utf-8") as f:
        source = f.read()
    head, _, _ = source.partition("\nif __name__ == ")
    return (
        f"#!{python} -I\n"
        "# Installed by `mailcall sieve install`; regenerate rather than edit.\n"
        + head
        + f"\n\nif __name__ == \"__main__\":\n    sys.exit(main(sys.argv[1:], {socket_path!r}))\n"
    )


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: exec_client.py SOCKET [ARGS...]", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[2:], sys.argv[1]))
