"""ALP projection progress (``AlpProjInquireEx(ALP_PROJ_PROGRESS)``) read safely, and counted.

``tAlpProjProgress`` has nine fields whose width depends on the header: ``unsigned long`` is 32 bits
in the Windows header (a 36-byte struct) but 64 bits on LP64 Linux (72 bytes, ALP4lib's ``c_ulong``
layout), and ViALUX's Linux header was not available to check. :func:`new_buffer` makes a 128-byte
buffer filled with a guard byte, so the library can never write past it; :func:`decode` reads the
layout from how far the library wrote (bytes 36..71 untouched: 32-bit fields) and refuses a library
that wrote beyond 72 bytes. :func:`pictures_shown` turns the counters into pictures begun.

Thread-safety: stateless functions.
"""

from __future__ import annotations

import ctypes as ct
import struct

FIELDS = (
    "CurrentQueueId",
    "SequenceId",
    "nWaitingSequences",
    "nSequenceCounter",  # iterations still to do; decreases per iteration (and wraps in loop mode)
    "nSequenceCounterUnderflow",
    "nFrameCounter",  # pictures left inside the current iteration
    "nPictureTime",
    "nFramesPerSubSequence",
    "nFlags",
)
NARROW_BYTES = 9 * 4  # the Windows header's layout
PROGRESS_BYTES = 9 * 8  # unsigned long on LP64: the larger layout
BUFFER_BYTES = 128  # the larger layout and a guard
GUARD = 0xA5


def new_buffer() -> ct.Array:
    """A buffer to pass to ``AlpProjInquireEx``, every byte set to :data:`GUARD`."""
    return (ct.c_uint8 * BUFFER_BYTES)(*([GUARD] * BUFFER_BYTES))


def decode(buffer: ct.Array) -> dict[str, int] | None:
    """The fields the library wrote into ``buffer`` (from :func:`new_buffer`), plus ``bits`` (32 or
    64, the layout's field width); None when it wrote past :data:`PROGRESS_BYTES`."""
    raw = bytes(buffer)
    if any(byte != GUARD for byte in raw[PROGRESS_BYTES:]):
        return None
    narrow = all(byte == GUARD for byte in raw[NARROW_BYTES:PROGRESS_BYTES])
    if narrow:
        fields = dict(zip(FIELDS, struct.unpack("<9I", raw[:NARROW_BYTES]), strict=True))
    else:
        fields = dict(zip(FIELDS, struct.unpack("<9Q", raw[:PROGRESS_BYTES]), strict=True))
    fields["bits"] = 32 if narrow else 64
    return fields


def pictures_shown(
    fields: dict[str, int], total: int, *, loop: bool, active: bool, counter_at_start: int
) -> int:
    """Pictures of a ``total``-picture sequence whose display began since the start.

    Shown once: ``total`` once the device is idle, else those begun in the iteration. In loop mode:
    iterations completed (the decrease of ``nSequenceCounter`` from ``counter_at_start``, modulo
    the field width) × ``total`` + those begun in the current iteration.
    """
    begun = total - min(fields["nFrameCounter"], total)
    if not loop:
        return begun if active else total
    iterations = (counter_at_start - fields["nSequenceCounter"]) & ((1 << fields["bits"]) - 1)
    return iterations * total + begun
