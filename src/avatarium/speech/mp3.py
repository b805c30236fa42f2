"""PCM to MP3 with LAME (``lameenc``)."""

from __future__ import annotations

MP3_BITRATE_KBPS = 64


def encode_mp3(pcm: bytes, sample_rate: int) -> bytes:
    """16-bit mono PCM to a constant-bitrate MP3."""
    import lameenc

    encoder = lameenc.Encoder()
    encoder.set_bit_rate(MP3_BITRATE_KBPS)
    encoder.set_in_sample_rate(sample_rate)
    encoder.set_channels(1)
    encoder.set_quality(5)  # LAME's "good and fast" middle setting
    return bytes(encoder.encode(pcm)) + bytes(encoder.flush())
