"""Binary tensor frames: how pipeline stages exchange activations and gradients (Dora's wire format).

One frame carries one tensor and a small JSON object of metadata (request,
micro-batch, direction).  All integers are little-endian:

======== ============ ==================================================
offset   size         field
======== ============ ==================================================
0        4            magic ``b"EWTF"``
4        1            version (1)
5        1            dtype code: 0 float32, 1 float16, 2 bfloat16, 3 int64, 4 int32
6        1            ndim (0-8)
7        1            flags (0; reserved)
8        4            metadata length M (uint32)
12       8 * ndim     shape (uint64 each)
.        M            metadata: a UTF-8 JSON object
.        rest         the elements, C order, little-endian
======== ============ ==================================================

Several frames travel in one body as a uint32 count followed by each frame
after its uint64 length (:func:`pack`).

A frame whose length, dtype, rank or metadata does not add up is refused with
:class:`FrameError` naming what is wrong; nothing is guessed.  Hosts are
little-endian (x86, ARM), so tensors are framed as they lie in memory.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import torch

from edgeweave.errors import EdgeweaveError

MAGIC = b"EWTF"
VERSION = 1
MAX_NDIM = 8
CONTENT_TYPE = "application/x-edgeweave-tensor"
_HEADER = struct.Struct("<4sBBBBI")
DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.int32)


if sys.byteorder != "little":  # frames are little-endian and tensors are framed as they lie in memory
    raise ImportError("tensor frames need a little-endian host")


class FrameError(EdgeweaveError):
    """A tensor frame that cannot be decoded."""


def encode(tensor: torch.Tensor, meta: dict[str, Any] | None = None) -> bytes:
    if tensor.dtype not in DTYPES:
        raise FrameError(f"dtype {tensor.dtype} cannot be framed (one of {', '.join(map(str, DTYPES))})")
    if tensor.dim() > MAX_NDIM:
        raise FrameError(f"a tensor of rank {tensor.dim()} cannot be framed (at most {MAX_NDIM})")
    text = json.dumps(meta or {}, separators=(",", ":")).encode()
    t = tensor.detach().to("cpu").contiguous()
    raw = (t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes()  # bf16: no numpy twin
    head = _HEADER.pack(MAGIC, VERSION, DTYPES.index(t.dtype), t.dim(), 0, len(text))
    return head + struct.pack(f"<{t.dim()}Q", *t.shape) + text + raw


def decode(frame: bytes) -> tuple[torch.Tensor, dict[str, Any]]:
    if len(frame) < _HEADER.size:
        raise FrameError(f"frame of {len(frame)} bytes is shorter than the {_HEADER.size}-byte header")
    magic, version, code, ndim, _flags, meta_len = _HEADER.unpack_from(frame)
    if magic != MAGIC:
        raise FrameError(f"not a tensor frame (magic {magic!r}, expected {MAGIC!r})")
    if version != VERSION:
        raise FrameError(f"frame version {version} is not supported (this side speaks {VERSION})")
    if code >= len(DTYPES):
        raise FrameError(f"unknown dtype code {code}")
    if ndim > MAX_NDIM:
        raise FrameError(f"rank {ndim} exceeds {MAX_NDIM}")
    at = _HEADER.size
    if len(frame) < at + 8 * ndim + meta_len:
        raise FrameError("frame ends inside its shape or metadata")
    shape = struct.unpack_from(f"<{ndim}Q", frame, at)
    at += 8 * ndim
    try:
        meta = json.loads(frame[at : at + meta_len] or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FrameError(f"metadata is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise FrameError("metadata must be a JSON object")
    at += meta_len
    dtype = DTYPES[code]
    count = 1
    for n in shape:
        count *= n
    expected = count * dtype.itemsize
    if len(frame) - at != expected:
        raise FrameError(
            f"shape {list(shape)} of {dtype} needs {expected} bytes of data, the frame has {len(frame) - at}"
        )
    if count == 0:
        return torch.empty(shape, dtype=dtype), meta
    flat = torch.frombuffer(bytearray(frame[at:]), dtype=torch.int16 if dtype == torch.bfloat16 else dtype)
    return (flat.view(torch.bfloat16) if dtype == torch.bfloat16 else flat).reshape(shape), meta


def pack(frames: list[bytes]) -> bytes:
    """Several frames in one body: a uint32 count, then each frame after its uint64 length."""
    return struct.pack("<I", len(frames)) + b"".join(struct.pack("<Q", len(f)) + f for f in frames)


def unpack(body: bytes) -> list[bytes]:
    if len(body) < 4:
        raise FrameError("a frame list needs at least its 4-byte count")
    (count,) = struct.unpack_from("<I", body)
    at, out = 4, []
    for i in range(count):
        if len(body) < at + 8:
            raise FrameError(f"frame list ends before frame {i + 1} of {count}")
        (n,) = struct.unpack_from("<Q", body, at)
        at += 8
        if len(body) < at + n:
            raise FrameError(f"frame {i + 1} of {count} is cut short")
        out.append(body[at : at + n])
        at += n
    if at != len(body):
        raise FrameError(f"{len(body) - at} bytes after the last of {count} frames")
    return out
