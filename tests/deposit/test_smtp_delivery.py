"""Delivery by SMTP to an MTA, over a real socket: a scripted SMTP server stands in for the MTA.

It answers 451 (greylisting) to the first attempt and 250 to the next, so the
temporary-failure path (deferred, retried with backoff, then delivered) runs on
the wire; a 554 makes the deposit parked. The message the server receives is
checked byte for byte against the spooled one (dot-stuffing undone).
"""

from __future__ import annotations

import asyncio

from mailcall.deposit.delivery import parse_target
from mailcall.deposit.spool import Spool
from tests.deposit.support import FAST, make_policy, make_worker, run, voice


class ScriptedMTA:
    def __init__(self, final_replies: list[bytes]) -> None:
        self.final_replies = final_replies
        self.received: list[bytes] = []
        self.commands: list[bytes] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 mx.example.test ESMTP\r\n")
        while line := await reader.readline():
            self.commands.append(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"250-mx.example.test\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT"):
                writer.write(b"250 2.1.0 ok\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                lines = []
                while (data := await reader.readline()) != b".\r\n":
                    lines.append(data[1:] if data.startswith(b"..") else data)
                self.received.append(b"".join(lines))
                reply = self.final_replies.pop(0) if self.final_replies else b"250 2.0.0 queued"
                writer.write(reply + b"\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            await writer.drain()
        writer.close()


async def serve(mta: ScriptedMTA):
    server = await asyncio.start_server(mta.handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def wait_for_state(spool: Spool, state: str, timeout: float = 20) -> None:
    async with asyncio.timeout(timeout):
        while not spool.ids(state):
            await asyncio.sleep(0.02)


def test_smtp_greylisted_then_accepted(tmp_path):
    mta = ScriptedMTA([b"451 4.7.1 greylisted, come back later"])

    async def scenario():
        server, port = await serve(mta)
        policy = make_policy(f"127.0.0.1:{port}", method="smtp", formats=("mp3",))
        assert parse_target("smtp", f"127.0.0.1:{port}").method == "smtp"
        worker = make_worker(tmp_path / "spool", policy)
        await worker.start()
        try:
            worker.spool.accept(voice("1764263000.1"))
            worker.wake()
            await wait_for_state(worker.spool, "delivered")
        finally:
            await worker.stop(5)
            server.close()
        return worker.spool

    spool = run(scenario())
    [record] = spool.records()
    assert record.state == "delivered" and record.attempts == 2
    assert record.results[0].reply.startswith("250 2.0.0 queued")
    assert mta.commands[0].startswith(b"EHLO ")
    assert b"MAIL FROM:<mailcall@example.test>\r\n" in mta.commands
    assert b"RCPT TO:<alice@example.test>\r\n" in mta.commands
    # The retry sent the very same bytes, and they are the spooled message.
    assert len(mta.received) == 2 and mta.received[0] == mta.received[1]
    assert mta.received[1] == spool.message_path(record.id).read_bytes()


def test_smtp_permanent_refusal_is_parked(tmp_path):
    mta = ScriptedMTA([b"554 5.7.1 relay denied"])

    async def scenario():
        server, port = await serve(mta)
        worker = make_worker(tmp_path / "spool", make_policy(f"127.0.0.1:{port}", method="smtp"),
                             FAST)
        await worker.start()
        try:
            worker.spool.accept(voice("1764263000.2"))
            worker.wake()
            await wait_for_state(worker.spool, "parked")
        finally:
            await worker.stop(5)
            server.close()
        return worker.spool

    spool = run(scenario())
    [record] = spool.records()
    assert record.attempts == 1
    assert "554 5.7.1 relay denied" in record.last_error
