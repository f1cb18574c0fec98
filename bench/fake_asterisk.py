"""The benchmarks' Asterisk: one FastAGI ``route`` session, answered at once and from memory.

Shared by bench/agi/bench_agi.py and bench/deposit/bench_offloop.py so that both measure
the same session: "alice's desk phone does not answer, her mobile does" (Dial,
DIALSTATUS, Dial, DIALSTATUS, then the SET VARIABLEs mailcall leaves). Nothing here is
checked against the traces: tests/agi/fake_asterisk.py is the faithful one, this one is
only as cheap as it can be, so that what a benchmark measures is the server.
"""

from __future__ import annotations

import asyncio

ENV = (
    b"agi_network: yes\n"
    b"agi_network_script: route\n"
    b"agi_request: agi://127.0.0.1:4573/route\n"
    b"agi_channel: PJSIP/trunk-00000001\n"
    b"agi_language: fr\n"
    b"agi_type: PJSIP\n"
    b"agi_uniqueid: 1795887768.3\n"
    b"agi_version: 20.10.0\n"
    b"agi_callerid: +33611111111\n"
    b"agi_calleridname: Client\n"
    b"agi_callingpres: 0\n"
    b"agi_callingani2: 0\n"
    b"agi_callington: 0\n"
    b"agi_callingtns: 0\n"
    b"agi_dnid: 201\n"
    b"agi_rdnis: unknown\n"
    b"agi_context: from-trunk\n"
    b"agi_extension: 201\n"
    b"agi_priority: 1\n"
    b"agi_enhanced: 0.0\n"
    b"agi_accountcode: \n"
    b"agi_threadid: 139903882958528\n"
    b"agi_arg_1: 201\n"
    b"\n"
)
"""The environment block of a call from a client to alice's extension 201."""


def answer_for(line: bytes, dials: list[int]) -> bytes:
    """The reply to one command line; `dials` counts the Dials of this session so far."""
    if line.startswith(b"EXEC Dial"):
        dials[0] += 1
        return b"200 result=0\n"
    if line.startswith(b"GET VARIABLE DIALSTATUS"):
        return b"200 result=1 (NOANSWER)\n" if dials[0] < 2 else b"200 result=1 (ANSWER)\n"
    if line.startswith(b"GET VARIABLE"):
        return b"200 result=0\n"
    return b"200 result=1\n"


async def one_session(port: int, lines: list[bytes] | None = None) -> int:
    """One FastAGI session as Asterisk plays it; returns the number of commands."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(ENV)
    dials = [0]
    n = 0
    try:
        while line := await reader.readline():
            if lines is not None:
                lines.append(line)
            n += 1
            writer.write(answer_for(line, dials))
    finally:
        writer.close()
    return n
