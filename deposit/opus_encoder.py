"""Ogg Opus for voicemail: libopus tuned for speech, framed by libogg, through cffi.

Why not libsndfile's Opus writer: it uses OPUS_APPLICATION_AUDIO with default
settings, cannot be told the signal is voice, and spends about twice the CPU on
8 kHz telephone speech. Here the encoder is set for what voicemail is
(libopus ``opus_defines.h``): ``OPUS_APPLICATION_VOIP``, ``OPUS_SIGNAL_VOICE``,
narrowband cap (the recording is 8 kHz: nothing above 4 kHz exists), VBR at
``bitrate`` (≤ 16 kbit/s) and a moderate complexity, which for SILK at 8 kHz
costs little CPU and no audible quality.

The stream follows RFC 7845: an ``OpusHead`` packet alone on the first page
(version 1, pre-skip in 48 kHz samples taken from ``OPUS_GET_LOOKAHEAD``, the
original input rate), ``OpusTags`` on its own page(s), then audio packets whose
granule positions count 48 kHz samples *including* the pre-skip; the last page
carries end-of-stream and a granule position that trims the padding the
encoder needed, so decoders return exactly the recorded length.

cffi ABI mode (``dlopen("libopus.so.0")``) is used: no compiler at install time,
only Debian's ``libopus0`` and ``libogg0``. The struct layouts below are copied
from ``ogg/ogg.h`` 1.3.x, which has been ABI-stable since 2002.
"""

from __future__ import annotations

import functools
import struct
import zlib
from dataclasses import dataclass

import numpy
import soundfile

CDEF = """
typedef struct OpusEncoder OpusEncoder;
OpusEncoder *opus_encoder_create(int32_t Fs, int channels, int application, int *error);
void opus_encoder_destroy(OpusEncoder *st);
int opus_encoder_ctl(OpusEncoder *st, int request, ...);
int32_t opus_encode(OpusEncoder *st, const int16_t *pcm, int frame_size,
                    unsigned char *data, int32_t max_data_bytes);
const char *opus_get_version_string(void);
const char *opus_strerror(int error);

typedef struct {
  unsigned char *header; long header_len; unsigned char *body; long body_len;
} ogg_page;
typedef struct {
  unsigned char *body_data; long body_storage; long body_fill; long body_returned;
  int *lacing_vals; int64_t *granule_vals;
  long lacing_storage; long lacing_fill; long lacing_packet; long lacing_returned;
  unsigned char header[282]; int header_fill;
  int e_o_s; int b_o_s; long serialno; long pageno; int64_t packetno; int64_t granulepos;
} ogg_stream_state;
typedef struct {
  unsigned char *packet; long bytes; long b_o_s; long e_o_s; int64_t granulepos; int64_t packetno;
} ogg_packet;
int ogg_stream_init(ogg_stream_state *os, int serialno);
int ogg_stream_clear(ogg_stream_state *os);
int ogg_stream_packetin(ogg_stream_state *os, ogg_packet *op);
int ogg_stream_pageout(ogg_stream_state *os, ogg_page *og);
int ogg_stream_flush(ogg_stream_state *os, ogg_page *og);
"""

OPUS_APPLICATION_VOIP = 2048
OPUS_SET_BITRATE_REQUEST = 4002
OPUS_SET_MAX_BANDWIDTH_REQUEST = 4004
OPUS_SET_VBR_REQUEST = 4006
OPUS_SET_COMPLEXITY_REQUEST = 4010
OPUS_SET_SIGNAL_REQUEST = 4024
OPUS_GET_LOOKAHEAD_REQUEST = 4027
OPUS_SIGNAL_VOICE = 3001
OPUS_BANDWIDTH_NARROWBAND = 1101
OPUS_BANDWIDTH_WIDEBAND = 1103
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
MAX_PACKET = 1500


class OpusUnavailable(RuntimeError):
    """libopus or libogg cannot be loaded (install Debian's libopus0 and libogg0)."""


@functools.cache
def _libraries():
    """Load the shared libraries once per process.

    Cached because parsing the declarations costs milliseconds, as much as
    encoding a short message; the cache holds nothing that changes (dlopen is
    process-wide state anyway).
    """
    import cffi

    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    try:
        opus = ffi.dlopen("libopus.so.0")
        ogg = ffi.dlopen("libogg.so.0")
    except OSError as exc:
        raise OpusUnavailable(
            f"cannot load libopus/libogg ({exc}); install the Debian packages libopus0 and "
            "libogg0, or choose the 'wav' or 'mp3' voicemail format"
        ) from exc
    return ffi, opus, ogg


def available() -> bool:
    try:
        _libraries()
    except OpusUnavailable:
        return False
    return True


def opus_head(channels: int, pre_skip: int, input_rate: int) -> bytes:
    """RFC 7845 section 5.1 identification header (channel mapping family 0)."""
    return b"OpusHead" + struct.pack("<BBHIhB", 1, channels, pre_skip, input_rate, 0, 0)


def opus_tags(vendor: str, comments: tuple[str, ...] = ()) -> bytes:
    """RFC 7845 section 5.2 comment header."""
    v = vendor.encode()
    out = [b"OpusTags", struct.pack("<I", len(v)), v, struct.pack("<I", len(comments))]
    for comment in comments:
        c = comment.encode()
        out += [struct.pack("<I", len(c)), c]
    return b"".join(out)


@dataclass(frozen=True, slots=True)
class LibopusEncoder:
    """Speech-tuned Ogg Opus: the default encoder for the "opus" voicemail format."""

    bitrate: int = 16000
    complexity: int = 5
    frame_ms: int = 20
    format: str = "opus"
    mime_type: str = "audio/ogg"
    extension: str = "opus"
    name: str = "opus (libopus, VoIP, speech)"

    def encode(self, wav_path: str, out_path: str) -> None:
        data, rate = soundfile.read(wav_path, dtype="int16", always_2d=True)
        if data.shape[1] > 1:
            data = data.mean(axis=1, dtype=numpy.float64).astype(numpy.int16)[:, None]
        pcm = numpy.ascontiguousarray(data[:, 0])
        with open(out_path, "wb") as out:
            out.write(self.encode_pcm(pcm, rate))

    def encode_pcm(self, pcm: numpy.ndarray, rate: int) -> bytes:
        """Mono 16-bit samples at `rate` → a complete Ogg Opus file."""
        if rate not in OPUS_RATES:
            raise ValueError(f"Opus cannot take {rate} Hz input (only {OPUS_RATES})")
        ffi, opus, ogg = _libraries()
        err = ffi.new("int *")
        enc = opus.opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, err)
        if err[0] != 0 or enc == ffi.NULL:
            raise RuntimeError(f"opus_encoder_create: {ffi.string(opus.opus_strerror(err[0]))!r}")
        stream = ffi.new("ogg_stream_state *")
        try:
            return self._encode(ffi, opus, ogg, enc, stream, pcm, rate)
        finally:
            opus.opus_encoder_destroy(enc)
            ogg.ogg_stream_clear(stream)

    def _encode(self, ffi, opus, ogg, enc, stream, pcm, rate) -> bytes:
        def ctl(request: int, value: int) -> None:
            rc = opus.opus_encoder_ctl(enc, request, ffi.cast("int", value))
            if rc != 0:
                raise RuntimeError(f"opus_encoder_ctl({request}, {value}) failed: {rc}")

        ctl(OPUS_SET_SIGNAL_REQUEST, OPUS_SIGNAL_VOICE)
        ctl(OPUS_SET_BITRATE_REQUEST, self.bitrate)
        ctl(OPUS_SET_VBR_REQUEST, 1)
        ctl(OPUS_SET_COMPLEXITY_REQUEST, self.complexity)
        ctl(
            OPUS_SET_MAX_BANDWIDTH_REQUEST,
            OPUS_BANDWIDTH_NARROWBAND if rate <= 8000 else OPUS_BANDWIDTH_WIDEBAND,
        )
        lookahead = ffi.new("int32_t *")
        if opus.opus_encoder_ctl(enc, OPUS_GET_LOOKAHEAD_REQUEST, lookahead) != 0:
            raise RuntimeError("OPUS_GET_LOOKAHEAD failed")
        scale = 48000 // rate
        pre_skip = lookahead[0] * scale
        frame = rate * self.frame_ms // 1000
        total = len(pcm)
        # Pad so the encoder's look-ahead is flushed and every real sample is coded.
        needed = total + lookahead[0]
        frames = max(1, -(-needed // frame))
        padded = numpy.zeros(frames * frame, dtype=numpy.int16)
        padded[:total] = pcm
        final_granule = pre_skip + total * scale

        if ogg.ogg_stream_init(stream, zlib.crc32(pcm.tobytes()) & 0x7FFFFFFF) != 0:
            raise RuntimeError("ogg_stream_init failed")
        out: list[bytes] = []
        page = ffi.new("ogg_page *")
        packet = ffi.new("ogg_packet *")

        def drain(flush: bool) -> None:
            step = ogg.ogg_stream_flush if flush else ogg.ogg_stream_pageout
            while step(stream, page):
                out.append(bytes(ffi.buffer(page.header, page.header_len)))
                out.append(bytes(ffi.buffer(page.body, page.body_len)))

        version = ffi.string(opus.opus_get_version_string()).decode()
        for number, header in enumerate(
            (
                opus_head(1, pre_skip, rate),
                opus_tags(f"mailcall ({version})", ("ENCODER=mailcall",)),
            )
        ):
            buf = ffi.from_buffer(header)
            packet.packet = ffi.cast("unsigned char *", buf)
            packet.bytes = len(header)
            packet.b_o_s = 1 if number == 0 else 0
            packet.e_o_s = 0
            packet.granulepos = 0
            packet.packetno = number
            ogg.ogg_stream_packetin(stream, packet)
            drain(flush=True)  # RFC 7845: each header ends its page

        data = ffi.new("unsigned char[]", MAX_PACKET)
        source = ffi.cast("int16_t *", ffi.from_buffer(padded))
        granule = 0
        for index in range(frames):
            size = opus.opus_encode(enc, source + index * frame, frame, data, MAX_PACKET)
            if size < 0:
                raise RuntimeError(f"opus_encode: {ffi.string(opus.opus_strerror(size))!r}")
            granule += frame * scale
            last = index == frames - 1
            packet.packet = data
            packet.bytes = size
            packet.b_o_s = 0
            packet.e_o_s = 1 if last else 0
            packet.granulepos = final_granule if last else granule
            packet.packetno = index + 2
            ogg.ogg_stream_packetin(stream, packet)
            drain(flush=last)
        return b"".join(out)
