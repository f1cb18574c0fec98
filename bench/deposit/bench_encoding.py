"""Voicemail encoding speed per audio format, mailcall's libopus encoder beside libsndfile's.

    /work/venv/bin/python bench/deposit/bench_encoding.py [--seconds 60] [--repeat 5]

Input: a SECONDS-long 8 kHz mono 16-bit voice message made by repeating the two
real Asterisk recordings (French speech). Each encoder encodes it REPEAT times
in this process; what is reported is the best run's CPU time
(``time.process_time``: single-threaded encoders, so this is per core), as a
multiple of real time (audio seconds / CPU seconds), the resulting bitrate, and
the decoded duration error (libsndfile decodes every output).

Encoders, all in the same run:
* wav              passthrough copy (the "as recorded" format)
* opus libopus     mailcall's encoder: OPUS_APPLICATION_VOIP, signal voice,
                   narrowband, VBR 16 kbit/s, complexity 5 (and variants)
* opus libsndfile  soundfile's Ogg/Opus writer with its defaults (the baseline)
* mp3 libsndfile   soundfile's MP3 (LAME) writer with its defaults
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy
import soundfile

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.support

from mailcall.deposit.audio import WavEncoder, encoded_duration, sndfile_mp3, sndfile_opus
from mailcall.deposit.opus_encoder import LibopusEncoder
from tests.support import MEDIA


def make_input(path: Path, seconds: float) -> float:
    pieces = [soundfile.read(MEDIA / name, dtype="int16")[0]
              for name in ("voicemail-dtmf-end.wav", "voicemail-hangup-end.wav")]
    pcm = numpy.concatenate(pieces)
    reps = int(seconds * 8000 // len(pcm)) + 1
    pcm = numpy.tile(pcm, reps)[: int(seconds * 8000)]
    soundfile.write(path, pcm, 8000, subtype="PCM_16")
    return len(pcm) / 8000


def measure(encoder, wav: Path, out: Path, repeat: int) -> tuple[float, int]:
    encoder.encode(str(wav), str(out))  # warm-up: library loading, page cache
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        encoder.encode(str(wav), str(out))
        best = min(best, time.process_time() - start)
    return best, out.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="message length (default 60)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per encoder (default 5)")
    args = parser.parse_args()

    encoders = [
        ("wav (as recorded)", WavEncoder()),
        ("opus libopus 16k c5 20ms", LibopusEncoder()),
        ("opus libopus 12k c5 20ms", LibopusEncoder(bitrate=12000)),
        ("opus libopus 16k c10 20ms", LibopusEncoder(complexity=10)),
        ("opus libopus 16k c5 60ms", LibopusEncoder(frame_ms=60)),
        ("opus libsndfile default", sndfile_opus()),
        ("mp3 libsndfile default", sndfile_mp3()),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "message.wav"
        duration = make_input(wav, args.seconds)
        print(f"input: {duration:.1f} s of 8 kHz mono speech, best of {args.repeat} runs, "
              f"CPU time of this process (one core)\n")
        print(f"{'encoder':<28}{'x real time':>12}{'CPU s/msg':>11}{'kbit/s':>9}{'size kB':>9}"
              f"{'dur err ms':>12}")
        results = {}
        for label, encoder in encoders:
            out = Path(tmp) / f"out.{encoder.extension}"
            cpu, size = measure(encoder, wav, out, args.repeat)
            err = (encoded_duration(out) - duration) * 1000
            speed = duration / cpu if cpu > 0 else float("inf")
            results[label] = speed
            print(f"{label:<28}{speed:>12.0f}{cpu:>11.3f}{size * 8 / duration / 1000:>9.1f}"
                  f"{size / 1000:>9.1f}{err:>12.1f}")
        ratio = results["opus libopus 16k c5 20ms"] / results["opus libsndfile default"]
        print(f"\nlibopus (mailcall default) vs libsndfile Opus: {ratio:.2f}x faster; "
              f"target >= 150x real time at <= 16 kbit/s: "
              f"{'met' if results['opus libopus 16k c5 20ms'] >= 150 else 'NOT met'}")


if __name__ == "__main__":
    main()
