"""The asyncio AMI client against peers on real sockets: a replay of what Asterisk sent
(tests/ami/traces) and hostile peers (garbage, huge lines, no banner, no reading).

The live tests (tests/mwi/test_live.py) drive the same client against a real Asterisk.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from mailcall.ami.client import AmiClient, AmiNotConnected, AmiTimeout
from mailcall.ami.protocol import LocalProtocolError

SECRET = "s3cr3t-never-logged"
BANNER = b"Asterisk Call Manager/13.0.0\r\n"


class Peer:
    """A TCP server whose behaviour per connection is a coroutine (reader, writer)."""

    def __init__(self, behaviour) -> None:
        self.behaviour = behaviour
        self.connections = 0
        self.received = bytearray()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Peer:
        async def handle(reader, writer):
            self.connections += 1
            try:
                await self.behaviour(self, reader, writer)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()


async def read_action(peer: Peer, reader) -> dict[str, str]:
    raw = await reader.readuntil(b"\r\n\r\n")
    peer.received += raw
    return dict(line.split(": ", 1) for line in raw.decode().split("\r\n") if line)


async def asterisk_like(peer, reader, writer):
    """Answers as the real Asterisk did in tests/ami/traces/session.jsonl."""
    writer.write(BANNER)
    while True:
        act = await read_action(peer, reader)
        aid = act["ActionID"]
        if act["Action"] == "Login":
            ok = act["Secret"] == SECRET
            writer.write((f"Response: Success\r\nActionID: {aid}\r\nMessage: Authentication "
                          f"accepted\r\n\r\nEvent: FullyBooted\r\nPrivilege: system,all\r\n"
                          f"Uptime: 0\r\nLastReload: 0\r\nStatus: Fully Booted\r\n\r\n")
                         .encode() if ok else
                         f"Response: Error\r\nActionID: {aid}\r\nMessage: Authentication "
                         f"failed\r\n\r\n".encode())
        elif act["Action"] == "Ping":
            writer.write(f"Response: Success\r\nActionID: {aid}\r\nPing: Pong\r\n"
                         f"Timestamp: 1796119137.895207\r\n\r\n".encode())
        elif act["Action"] == "Logoff":
            writer.write(f"Response: Goodbye\r\nActionID: {aid}\r\nMessage: Thanks for all "
                         f"the fish.\r\n\r\n".encode())
            await writer.drain()
            return
        else:
            writer.write(f"Response: Success\r\nActionID: {aid}\r\n\r\n".encode())
        await writer.drain()


def client(port: int, secret_file, **kw) -> AmiClient:
    kw.setdefault("backoff_min", 0.05)
    kw.setdefault("backoff_max", 0.2)
    kw.setdefault("login_timeout", 1.0)
    return AmiClient("127.0.0.1", port, "mailcall", secret_file, **kw)


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "ami.secret"
    path.write_text(SECRET + "\n")
    path.chmod(0o640)
    return path


def no_secret_in(caplog) -> None:
    for record in caplog.records:
        assert SECRET not in record.getMessage()


async def test_login_action_events_and_logoff(secret_file, caplog):
    caplog.set_level(logging.DEBUG)
    events, logins = [], []
    async with Peer(asterisk_like) as peer:
        c = client(peer.port, secret_file)
        c.add_event_listener(events.append)
        c.add_connect_listener(lambda: logins.append(c.connected))
        await c.start()
        assert await c.wait_connected(2)
        reply = await c.action("MWIUpdate", {"Mailbox": "alice@mailcall", "NewMessages": 1,
                                             "OldMessages": 0})
        assert reply.ok and reply.action == "MWIUpdate"
        assert [e.name for e in events] == ["FullyBooted"]  # arrived in the Login's read
        assert logins == [True]
        await c.stop()
    assert b"Secret: " + SECRET.encode() in peer.received  # it was sent...
    no_secret_in(caplog)  # ...and never logged


async def test_refused_login_is_logged_once_and_retried_slowly(secret_file, tmp_path, caplog):
    wrong = tmp_path / "wrong.secret"
    wrong.write_text("nope\n")
    async with Peer(asterisk_like) as peer:
        c = client(peer.port, wrong, backoff_max=0.3)
        await c.start()
        await asyncio.sleep(1.0)
        assert not c.connected
        await c.stop()
    refused = [r for r in caplog.records if "refused login" in r.getMessage()]
    assert len(refused) == 1 and "manager.conf" in refused[0].getMessage()
    assert 2 <= peer.connections <= 6  # retried, at the slow pace


async def test_action_while_disconnected_fails_at_once(secret_file):
    c = client(1, secret_file)  # nothing listens on port 1
    await c.start()
    t0 = time.monotonic()
    with pytest.raises(AmiNotConnected):
        await c.action("Ping")
    assert time.monotonic() - t0 < 0.1
    await c.stop()


async def test_injection_is_refused_before_the_wire(secret_file):
    async with Peer(asterisk_like) as peer:
        c = client(peer.port, secret_file)
        await c.start()
        assert await c.wait_connected(2)
        with pytest.raises(LocalProtocolError):
            await c.action("MWIUpdate", {"Mailbox": "a@mailcall\r\nAction: Originate"})
        assert c.connected
        await c.stop()
    assert b"Originate" not in peer.received


async def test_reconnects_after_the_peer_drops(secret_file):
    logins = []

    async def drop_first(peer, reader, writer):
        if peer.connections == 1:
            writer.write(BANNER)
            await read_action(peer, reader)
            writer.write(b"Response: Success\r\nActionID: mailcall-1\r\n\r\n")
            await writer.drain()
            return  # hang up right after login
        await asterisk_like(peer, reader, writer)

    async with Peer(drop_first) as peer:
        c = client(peer.port, secret_file)
        c.add_connect_listener(lambda: logins.append(time.monotonic()))
        await c.start()
        deadline = time.monotonic() + 3
        while len(logins) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(logins) == 2 and c.connected
        assert (await c.action("Ping")).ok
        await c.stop()


@pytest.mark.parametrize("behaviour", ["garbage", "huge-line", "no-banner", "drip"])
async def test_hostile_peer_costs_bounded_memory_and_time(secret_file, caplog, behaviour):
    async def hostile(peer, reader, writer):
        if behaviour == "garbage":
            writer.write(b"\x00\xff GET / HTTP/1.1\r\n\r\n" * 100)
        elif behaviour == "huge-line":
            writer.write(BANNER)
            await read_action(peer, reader)
            writer.write(b"Response: Success\r\nActionID: mailcall-1\r\n\r\nEvent: X\r\nK: ")
            for _ in range(400):  # 400 x 4 KiB, no line end
                writer.write(b"A" * 4096)
                await writer.drain()
        elif behaviour == "drip":
            for byte in BANNER:  # one byte every 50 ms: no banner within login_timeout
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.05)
        await asyncio.sleep(5)

    async with Peer(hostile) as peer:
        c = client(peer.port, secret_file, login_timeout=0.5)
        await c.start()
        await asyncio.sleep(1.5)
        session = c._session
        assert session is not None and session.conn.buffered <= 70 * 1024
        assert not c.connected
        t0 = time.monotonic()
        with pytest.raises(AmiNotConnected):
            await c.action("Ping")
        assert time.monotonic() - t0 < 0.05
        await c.stop()
    assert peer.connections >= 2  # it gave up on each one and tried again
    warned = {r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING}
    assert 1 <= len(warned) <= 3  # one line per distinct reason, not one per retry


async def test_peer_that_stops_reading_is_dropped(secret_file):
    async def deaf(peer, reader, writer):
        writer.write(BANNER)
        await read_action(peer, reader)
        writer.write(b"Response: Success\r\nActionID: mailcall-1\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(10)  # never reads again

    async with Peer(deaf) as peer:
        c = client(peer.port, secret_file, max_write_buffer=64 * 1024, action_timeout=0.2)
        await c.start()
        assert await c.wait_connected(2)
        dropped = False
        for i in range(2000):
            try:
                await asyncio.wait_for(
                    c.action("UserEvent", {"UserEvent": "x", "Pad": "p" * 900, "N": i},
                             timeout=5), 0.01)
            except TimeoutError:
                pass
            except AmiNotConnected:
                dropped = True
                break
        assert dropped
        await c.stop()


async def test_unanswered_action_times_out(secret_file):
    async def silent_after_login(peer, reader, writer):
        writer.write(BANNER)
        await read_action(peer, reader)
        writer.write(b"Response: Success\r\nActionID: mailcall-1\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(5)

    async with Peer(silent_after_login) as peer:
        c = client(peer.port, secret_file, action_timeout=0.2)
        await c.start()
        assert await c.wait_connected(2)
        with pytest.raises(AmiTimeout, match="did not answer Ping"):
            await c.action("Ping")
        await c.stop()


async def test_missing_secret_file_names_it(tmp_path, caplog):
    async with Peer(asterisk_like) as peer:
        c = client(peer.port, tmp_path / "absent.secret")
        await c.start()
        await asyncio.sleep(0.3)
        await c.stop()
    assert any("absent.secret does not exist" in r.getMessage() for r in caplog.records)


async def test_a_peer_that_drops_after_each_login_is_retried_with_backoff(secret_file):
    """Each login used to reset the backoff, so a peer that takes the login and hangs up
    was reconnected every few milliseconds, and the lamp resent every lamp each time."""

    async def login_then_drop(peer, reader, writer):
        writer.write(BANNER)
        act = await read_action(peer, reader)
        writer.write(f"Response: Success\r\nActionID: {act['ActionID']}\r\n\r\n".encode())
        await writer.drain()

    async with Peer(login_then_drop) as peer:
        c = client(peer.port, secret_file, backoff_min=0.05, backoff_max=0.4)
        logins = []
        c.add_connect_listener(lambda: logins.append(time.monotonic()))
        await c.start()
        await asyncio.sleep(2.5)
        await c.stop()
    # 0.05 s doubling to 0.4 s (jitter 0.5-1x): about ten logins in 2.5 s, not fifty.
    assert 2 <= len(logins) <= 16, len(logins)
