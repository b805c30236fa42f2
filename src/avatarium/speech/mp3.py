"""MP3: encoding PCM with LAME (``lameenc``), and measuring MP3 bytes from any vendor."""

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


# Measuring: walk the MPEG frame headers (vendors send MP3 without a duration).

BITRATES = {  # kbit/s by (version group, bitrate index) for Layer III
    1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
SAMPLE_RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}


def mp3_duration_ms(data: bytes) -> float:
    """Duration from walking every frame; raises ValueError if the stream is not MP3."""
    position = 0
    if data[:3] == b"ID3":
        size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
        position = 10 + size
    frames = 0
    samples = 0
    rate = 0
    while position + 4 <= len(data):
        header = int.from_bytes(data[position : position + 4], "big")
        if header >> 21 != 0x7FF:
            raise ValueError(f"lost frame sync at byte {position}")
        version = (header >> 19) & 3
        layer = (header >> 17) & 3
        bitrate_index = (header >> 12) & 15
        rate_index = (header >> 10) & 3
        padding = (header >> 9) & 1
        if version == 1 or layer != 1 or bitrate_index in (0, 15) or rate_index == 3:
            raise ValueError(f"not a Layer III frame at byte {position}")
        group = 1 if version == 3 else 2
        bitrate = BITRATES[group][bitrate_index] * 1000
        rate = SAMPLE_RATES[version][rate_index]
        per_frame = 1152 if version == 3 else 576
        length = (per_frame // 8) * bitrate // rate + padding
        position += length
        frames += 1
        samples += per_frame
    if frames == 0:
        raise ValueError("no MP3 frames")
    return samples / rate * 1000


def strip_id3(data: bytes) -> bytes:
    """The MP3 frames without a leading ID3v2 tag (vendors may prepend one)."""
    if data[:3] != b"ID3" or len(data) < 10:
        return data
    size = (data[6] << 21) | (data[7] << 14) | (data[8] << 7) | data[9]
    return data[10 + size :]
