"""The environment block reader on its own (agi/environment_reader.py), without the
connection around it: what it takes out of the buffer, what it leaves, what it refuses.
The connection's use of it is tested in test_protocol.py and test_environment_block.py."""

from __future__ import annotations

import pytest

from mailcall.agi.environment_reader import MAX_ENV_BYTES, EnvironmentBlockReader
from mailcall.core.sansio import RemoteProtocolError

from .support import TRACES, load_trace

BLOCK = load_trace(TRACES / "basic.jsonl").env_bytes


def test_takes_the_block_out_of_the_buffer_and_leaves_what_follows():
    reader = EnvironmentBlockReader()
    buf = bytearray(BLOCK[:100])
    assert reader.read(buf, 16384, 256) is None
    assert buf == BLOCK[:100]  # nothing is consumed before the block is whole
    buf += BLOCK[100:] + b"200 result=0\n"
    env = reader.read(buf, 16384, 256)
    assert env is not None and env["agi_network"] == "yes"
    assert env["agi_channel"] == "Local/basic@tests-00000000;2"
    assert buf == b"200 result=0\n"
    assert reader.notes == []


def test_one_byte_at_a_time_gives_the_same_variables():
    whole = EnvironmentBlockReader().read(bytearray(BLOCK), 16384, 256)
    reader = EnvironmentBlockReader()
    buf = bytearray()
    got = None
    for byte in BLOCK:
        assert got is None
        buf.append(byte)
        got = reader.read(buf, 16384, 256)
    assert got == whole and buf == b""


def test_a_forged_copy_is_noted_for_the_warning():
    forged = BLOCK.replace(b"\n\n", b"\nagi_arg_9: x\n\n", 1).replace(
        b"agi_arg_1: ", b"agi_arg_1: a\nagi_arg_2: b ", 1)
    reader = EnvironmentBlockReader()
    assert reader.read(bytearray(forged), 16384, 256) is not None
    assert any("agi_arg_" in note for note in reader.notes)


@pytest.mark.parametrize(("data", "max_line", "max_env_lines", "message"), [
    (BLOCK, 40, 256, "a line longer than 40 bytes"),
    (BLOCK, 16384, 5, "an environment block longer than 5 lines"),
    (b"agi_network: yes\n" + b"x" * (MAX_ENV_BYTES + 1), 10**6, 256,
     f"an environment block longer than {MAX_ENV_BYTES} bytes"),
    (b"HTTP/1.1 200 OK\n\n", 16384, 256, "not an agi_ environment line"),
])
def test_refuses_past_a_bound_or_a_line_asterisk_does_not_write(data, max_line, max_env_lines,
                                                                 message):
    with pytest.raises(RemoteProtocolError, match=message):
        EnvironmentBlockReader().read(bytearray(data), max_line, max_env_lines)
