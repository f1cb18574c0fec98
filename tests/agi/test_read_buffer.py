"""Every connection reads into one buffer owned by the server: nothing may leak between them.

The server is an ``asyncio.BufferedProtocol`` whose ``get_buffer`` hands every
connection the same memory (agi/server.py says why). These tests interleave
the bytes of several calls in small pieces, so that each read lands in that
shared buffer between two reads of another call, and check that every session
saw exactly its own environment and its own replies.
"""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from mailcall.agi.environment_reader import MAX_ENV_BYTES
from mailcall.agi.server import READ_BUFFER, AgiServer

from .support import all_traces

ENV = all_traces()[1].env_bytes  # dial-answer's environment
CALLS = 6


def _env_for(n: int) -> bytes:
    return ENV.replace(b"agi_channel: Local/dial-answer@tests-00000007;2\n",
                       f"agi_channel: PJSIP/call-{n}\n".encode())


def _pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


async def _interleaved(writers, payloads: list[bytes], size: int) -> None:
    """Write piece k of every payload before piece k+1 of any, each as its own read."""
    chunks = [_pieces(p, size) for p in payloads]
    for k in range(max(len(c) for c in chunks)):
        for writer, pieces in zip(writers, chunks, strict=True):
            if k < len(pieces):
                writer.write(pieces[k])
                await writer.drain()
        await asyncio.sleep(0.002)  # let the server read each piece on its own


async def _calls(size: int) -> dict[str, tuple[str | None, str | None]]:
    seen: dict[str, tuple[str | None, str | None]] = {}

    async def handler(session, runtime):
        first = await session.get_variable("FIRST")
        second = await session.get_variable("SECOND")
        seen[session.env.channel] = (first, second)
        return "OK"

    server = AgiServer(None, {"dial-answer": handler}, host="127.0.0.1", port=0)
    await server.start()
    try:
        pairs = [await asyncio.open_connection(*server.address) for _ in range(CALLS)]
        readers = [r for r, _ in pairs]
        writers = [w for _, w in pairs]
        await _interleaved(writers, [_env_for(n) for n in range(CALLS)], size)
        for variable in ("FIRST", "SECOND"):
            for reader in readers:
                line = await asyncio.wait_for(reader.readline(), 5)
                assert line == f"GET VARIABLE {variable}\n".encode(), line
            await _interleaved(writers, [
                f"200 result=1 ({variable.lower()}-of-call-{n})\n".encode()
                for n in range(CALLS)
            ], size)
        for reader in readers:
            assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed
        for writer in writers:
            writer.close()
    finally:
        await server.stop(1.0)
    return seen


def _expected() -> dict[str, tuple[str, str]]:
    return {f"PJSIP/call-{n}": (f"first-of-call-{n}", f"second-of-call-{n}")
            for n in range(CALLS)}


LOOPS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])
"""uvloop calls get_buffer/buffer_updated from its own C code: both loops are checked."""


@LOOPS
def test_interleaved_calls_each_get_their_own_bytes(run):
    assert run(_calls(size=7)) == _expected()


@LOOPS
def test_one_byte_reads_across_calls(run):
    assert run(_calls(size=1)) == _expected()


@LOOPS
def test_a_read_larger_than_the_buffer_is_split_not_lost(run):
    """An environment bigger than one read: more than READ_BUFFER bytes in one write."""
    padding = b"".join(f"agi_arg_{i}: {'x' * 400}\n".encode() for i in range(1, 129))
    big = _env_for(0).replace(b"\n\n", b"\n" + padding + b"\n")
    assert 3 * READ_BUFFER < len(big) <= MAX_ENV_BYTES

    async def go():
        got = {}

        async def handler(session, runtime):
            got["arg128"] = session.env.arg(128)
            got["channel"] = session.env.channel
            return "OK"

        server = AgiServer(None, {"dial-answer": handler}, host="127.0.0.1", port=0)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(big)
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()
        finally:
            await server.stop(1.0)
        return got

    assert run(go()) == {"arg128": "x" * 400, "channel": "PJSIP/call-0"}
