"""A real Asterisk plays what mailcall writes: speech chunks, greetings, decoded voicemail.

Each file is played by ``Playback()`` on one half of a Local channel and
recorded by ``Record()`` on the other half, so the test hears what a caller
would: the right length, not silence. Asterisk's log names the file it played
with the channel's format (``slin``): signed linear, as the ``.sln`` files are.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy
import pytest
import soundfile

from mailcall.deposit.opus_encoder import LibopusEncoder
from mailcall.playback import decode_to_sln
from mailcall.speech import Speaker
from mailcall.speech.espeak import EspeakEngine
from tests.support.asterisk import Asterisk, find_prefix

pytestmark = pytest.mark.asterisk


@pytest.fixture(scope="module")
def work() -> Path:
    # Not under pytest's tmp dir: Asterisk's control socket path must stay under 108 bytes.
    root = Path(tempfile.mkdtemp(prefix="mailcall-play-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def media(work: Path) -> dict[str, tuple[Path, float]]:
    """name → (file without extension for Playback, seconds) of what mailcall wrote."""
    engine = EspeakEngine()
    if not engine.available:
        pytest.fail(f"{engine.problem} (.ci/apt-packages.txt lists libespeak-ng1)")
    folder = work / "media"
    folder.mkdir()

    async def first_chunk():
        speaker = Speaker(engine)
        text = "Message de Emma Laurent, reçu aujourd'hui à dix heures. Le reste suit."
        async with contextlib.aclosing(speaker.speak(text, "fr", folder)) as chunks:
            return await anext(chunks)

    chunk = asyncio.run(first_chunk())
    greeting = folder / "greeting.wav"
    assert engine.synthesize("Emma Laurent est absente. Laissez un message.", "fr",
                             str(greeting))
    recording = folder / "rec.wav"
    t = numpy.arange(8000 * 4) / 8000
    soundfile.write(str(recording), (numpy.sin(2 * numpy.pi * 500 * t) * 9000).astype(
        numpy.int16), 8000, subtype="PCM_16")
    LibopusEncoder().encode(str(recording), str(folder / "vm.opus"))
    voicemail = folder / "vm.sln"
    seconds = decode_to_sln((folder / "vm.opus").read_bytes(), "audio/ogg", voicemail)
    return {
        "chunk": (Path(chunk.stream_name), chunk.seconds),
        "greeting": (greeting.with_suffix(""), soundfile.info(str(greeting)).duration),
        "voicemail": (voicemail.with_suffix(""), seconds),
    }


@pytest.fixture(scope="module")
def asterisk(work: Path, shared_dir: Path, media) -> Asterisk:
    try:
        prefix = find_prefix(shared_dir)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    lines = ["[general]", "static=yes", "", "[mailcall-play]"]
    for name, (stem, _seconds) in media.items():
        lines += [f"exten => {name},1,Answer()", " same => n,Wait(0.2)",
                  f" same => n,Playback({stem})", " same => n,Hangup()"]
    ast = Asterisk(prefix, work / "ast", shared_dir / "asterisk" / "test-instance")
    try:
        ast.start("\n".join(lines) + "\n")
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield ast
    ast.stop()


def play_and_record(ast: Asterisk, name: str, out: Path) -> str:
    mark = ast.mark()
    with ast.ami() as ami:
        reply = ami.action("Originate", Channel=f"Local/{name}@mailcall-play",
                           Application="Record", Data=f"{out},0,0,qkx", Async="true")
        assert reply.get("Response") == "Success", reply
    ast.wait_log(r"Playing '", mark)
    deadline = time.monotonic() + 20
    while ast.channels() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ast.channels(), ast.log_since(mark)[-3000:]
    return ast.log_since(mark)


@pytest.mark.parametrize("name", ["chunk", "greeting", "voicemail"])
def test_asterisk_plays_the_file_at_its_length(asterisk, media, work, name):
    stem, seconds = media[name]
    out = work / f"heard-{name}.wav"
    log = play_and_record(asterisk, name, out)
    played = re.findall(r"Playing '([^']+)'", log)
    assert played == [f"{stem}.slin"], log[-3000:]
    heard, rate = soundfile.read(str(out), dtype="float32")
    assert rate == 8000
    # What the caller heard lasts as long as the file (plus the 0.2 s Wait), and is sound.
    assert len(heard) / rate == pytest.approx(seconds + 0.2, abs=0.4)
    loud = numpy.sqrt(numpy.mean(numpy.square(heard[int(0.3 * rate):])))
    assert loud > 0.02
