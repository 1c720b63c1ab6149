"""Tensor frames: every dtype round-trips bit for bit; a damaged frame is refused by name."""

from __future__ import annotations

import struct

import pytest
import torch

from edgeweave.wire.tensor_frames import DTYPES, FrameError, decode, encode, pack, unpack


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_shape_round_trips_exactly(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    for shape in ((), (0,), (3,), (2, 5, 7)):
        t = (torch.randn(shape, generator=g) * 100).to(dtype)
        back, meta = decode(encode(t, {"request": "r1", "micro_batch": 2}))
        assert back.dtype == dtype and back.shape == t.shape and torch.equal(back, t)
        assert meta == {"request": "r1", "micro_batch": 2}
    strided = torch.arange(12, dtype=torch.float32).reshape(3, 4).t()  # not contiguous
    assert torch.equal(decode(encode(strided))[0], strided)


def test_damaged_frames_are_refused_with_the_reason() -> None:
    good = encode(torch.ones(2, 3), {"a": 1})
    cases = {
        good[:6]: "shorter than the 12-byte header",
        b"NOPE" + good[4:]: "not a tensor frame",
        good[:4] + bytes([9]) + good[5:]: "version 9",
        good[:5] + bytes([7]) + good[6:]: "unknown dtype code 7",
        good[:-1]: "needs 24 bytes of data, the frame has 23",
        good[:30]: "ends inside its shape or metadata",
    }
    for frame, reason in cases.items():
        with pytest.raises(FrameError, match=reason):
            decode(frame)
    bad_meta = bytearray(encode(torch.ones(1), {"k": "v"}))
    bad_meta[20:23] = b"\xff\xfe\xfd"
    with pytest.raises(FrameError, match="metadata is not JSON"):
        decode(bytes(bad_meta))
    with pytest.raises(FrameError, match="must be a JSON object"):
        decode(encode(torch.ones(1))[:8] + struct.pack("<I", 2) + struct.pack("<Q", 1) + b"[]" + b"\x00" * 4)
    with pytest.raises(FrameError, match="cannot be framed"):
        encode(torch.ones(2, dtype=torch.complex64))


def test_frame_lists_round_trip_and_refuse_truncation() -> None:
    frames = [b"", encode(torch.ones(2)), encode(torch.zeros(0, 3), {"k": 1})]
    assert unpack(pack(frames)) == frames
    body = pack(frames)
    for cut, reason in ((body[:2], "4-byte count"), (body[:10], "before frame 1"), (body[:-1], "cut short")):
        with pytest.raises(FrameError, match=reason):
            unpack(cut)
    with pytest.raises(FrameError, match="1 bytes after"):
        unpack(body + b"x")
