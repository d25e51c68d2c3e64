"""Wire protocol between the daemon and its clients: data messages on the stream, requests and replies
on the control channel. ``docs/protocol.md`` describes it for writers of clients in any language.

Data (PUB → SUB): a ZeroMQ multipart message ``[topic, header]`` or ``[topic, header, array]``. The
topic is ASCII (``recon``, ``speckle``, ``status``), the header a msgpack map, the array the raw,
C-ordered, little-endian bytes that the header's ``shape`` and ``dtype`` describe. Every header holds
``version`` (:data:`PROTOCOL_VERSION`), ``stream_id`` (drawn anew at each daemon start, so subscribers
see restarts), ``seq`` (per topic, +1 per message, so subscribers see gaps) and ``t_publish_ns``;
:data:`REQUIRED_FIELDS` lists the rest per topic.

Control (DEALER or REQ → ROUTER): one msgpack map per message, ``{"id", "cmd", "args"}``; the reply is
``{"id", "ok": true, "result"}`` or ``{"id", "ok": false, "error", "code"}``. :data:`COMMANDS` gives
every command's arguments and their types.

The decoders are strict: anything malformed raises :class:`ProtocolError` with a message naming the
problem. Never pickle. Clients import this module and nothing else of the daemon, so it depends on
msgpack and numpy only. Pure functions; thread-safe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

PROTOCOL_VERSION = 1
"""Bumped on any change a client must know about; decoders refuse other versions."""

TOPICS = ("recon", "speckle", "status")
DTYPES = ("uint8", "uint16", "float32")
"""Array element types on the wire, all little-endian."""

MAX_HEADER_BYTES = 64 * 1024
MAX_CONTROL_BYTES = 64 * 1024
"""Largest msgpack header / control message accepted; bigger ones are refused before unpacking."""

REQUIRED_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    "recon": {
        "frame_id": (int,),
        "picture": (int,),
        "target_index": (int, type(None)),
        "pcc": (float, type(None)),
        "t_capture_ns": (int,),
        "model": (str,),
        "case": (str,),
    },
    "speckle": {
        "frame_id": (int,),
        "picture": (int,),
        "target_index": (int, type(None)),
        "t_capture_ns": (int,),
    },
    "status": {"state": (str,), "counters": (dict,)},
}
"""Per topic, the header fields besides ``version``, ``stream_id``, ``seq``, ``t_publish_ns`` (and
``shape``/``dtype`` with an array) and their types; further fields are allowed (clients ignore what
they do not know)."""

_COMMON_FIELDS: dict[str, tuple[type, ...]] = {
    "version": (int,),
    "stream_id": (int,),
    "seq": (int,),
    "t_publish_ns": (int,),
}

COMMANDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "status": {},
    "acquire": {"targets": ((str,), True), "output": ((str,), True), "resume": ((bool,), False)},
    "live": {"model": ((str,), True), "targets": ((str,), True), "record": ((str,), False)},
    "stop": {},
    "load_model": {"model": ((str,), True)},
    "shutdown": {},
}
"""Command → argument → (accepted types, required). Paths are relative to the daemon's data directory."""

ERROR_CODES = ("bad_request", "unknown_command", "busy", "refused", "not_found", "failed")
"""``code`` of an error reply: malformed message, unknown command, a job already runs, refused
(e.g. a path outside the data directory, a model that does not fit), a file missing, the job failed."""


class ProtocolError(ValueError):
    """A message does not follow this protocol; the message says what is wrong."""


@dataclass(frozen=True)
class DataMessage:
    """A decoded stream message. ``array`` is a read-only view of the received bytes (copy to modify)."""

    topic: str
    header: dict[str, Any]
    array: np.ndarray | None = None


@dataclass(frozen=True)
class Request:
    """A decoded control request; ``id`` is echoed in the reply (int or str)."""

    id: int | str
    cmd: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A decoded control reply: ``result`` when ``ok``, else ``error`` (a sentence) and ``code``."""

    id: int | str | None
    ok: bool
    result: Any = None
    error: str = ""
    code: str = ""


# --- stream -----------------------------------------------------------------------------------------


def encode_data(topic: str, header: Mapping[str, Any], array: np.ndarray | None = None) -> list[Any]:
    """The multipart frames of one data message; ``version``, ``shape`` and ``dtype`` are filled in.

    The array goes out as a buffer of its own memory (no copy; send with ``copy=False`` and do not
    modify it until sent). Raises :class:`ProtocolError` for an unknown topic or dtype.
    """
    if topic not in TOPICS:
        raise ProtocolError(f"unknown topic {topic!r}; topics: {', '.join(TOPICS)}")
    fields = {**header, "version": PROTOCOL_VERSION}
    frames: list[Any] = [topic.encode("ascii")]
    if array is not None:
        array = np.ascontiguousarray(array)
        if array.dtype.name not in DTYPES:
            raise ProtocolError(f"array dtype {array.dtype.name} is not one of {', '.join(DTYPES)}")
        if array.dtype.byteorder == ">":
            array = array.astype(array.dtype.newbyteorder("<"))
        fields.update(shape=list(array.shape), dtype=array.dtype.name)
        frames += [msgpack.packb(fields), memoryview(array).cast("B")]
    else:
        frames.append(msgpack.packb(fields))
    return frames


def decode_data(frames: Sequence[Any]) -> DataMessage:
    """Decode and check the frames (bytes, or zmq.Frame / buffers) of one data message."""
    if len(frames) not in (2, 3):
        raise ProtocolError(f"a data message has 2 or 3 frames, got {len(frames)}")
    topic_bytes = _bytes(frames[0])
    topic = topic_bytes.decode("ascii", errors="replace")
    if topic not in TOPICS:
        raise ProtocolError(f"unknown topic {topic!r}")
    header = _unpack_map(frames[1], MAX_HEADER_BYTES, "header")
    _check_version(header)
    _check_fields(header, {**_COMMON_FIELDS, **REQUIRED_FIELDS[topic]}, f"{topic} header")
    if len(frames) == 2:
        if "shape" in header or "dtype" in header:
            raise ProtocolError(f"{topic} header describes an array but the message has none")
        return DataMessage(topic, header)
    return DataMessage(topic, header, _array(header, frames[2], topic))


def _array(header: dict[str, Any], frame: Any, topic: str) -> np.ndarray:
    shape, dtype = header.get("shape"), header.get("dtype")
    if dtype not in DTYPES:
        raise ProtocolError(f"{topic} header: dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not shape or not all(_is_int(n) and n >= 0 for n in shape):
        raise ProtocolError(f"{topic} header: shape must be a list of non-negative ints, got {shape!r}")
    buffer = memoryview(frame.buffer if hasattr(frame, "buffer") else frame)
    expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if buffer.nbytes != expected:
        raise ProtocolError(
            f"{topic}: array of shape {shape} {dtype} needs {expected} bytes, got {buffer.nbytes}"
        )
    array = np.frombuffer(buffer, np.dtype(dtype).newbyteorder("<")).reshape(shape)
    array.flags.writeable = False
    return array


# --- control ----------------------------------------------------------------------------------------


def encode_request(cmd: str, args: Mapping[str, Any] | None = None, *, id: int | str = 0) -> bytes:
    """One control request; checked like the daemon will check it, so a client fails early."""
    payload = msgpack.packb({"id": id, "cmd": cmd, "args": dict(args or {})})
    decode_request(payload)
    return payload


def decode_request(payload: Any) -> Request:
    """Decode and check a control request: known command, known arguments of the right types."""
    message = _unpack_map(payload, MAX_CONTROL_BYTES, "request")
    unknown = set(message) - {"id", "cmd", "args"}
    if unknown:
        raise ProtocolError(f"request: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    ident, cmd, args = message.get("id"), message.get("cmd"), message.get("args", {})
    if not (_is_int(ident) or isinstance(ident, str)):
        raise ProtocolError(f"request: id must be an int or a string, got {type(ident).__name__}")
    if not isinstance(cmd, str):
        raise ProtocolError(f"request: cmd must be a string, got {type(cmd).__name__}")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)}")
    if not isinstance(args, dict):
        raise ProtocolError(f"{cmd}: args must be a map, got {type(args).__name__}")
    schema = COMMANDS[cmd]
    for name, value in args.items():
        if name not in schema:
            raise ProtocolError(f"{cmd}: unknown argument {name!r}; arguments: {', '.join(schema) or 'none'}")
        types, _ = schema[name]
        if not _is_instance(value, types):
            raise ProtocolError(
                f"{cmd}: argument {name!r} must be {_type_names(types)}, got {_type_name(value)}"
            )
    missing = [name for name, (_, required) in schema.items() if required and name not in args]
    if missing:
        raise ProtocolError(f"{cmd}: missing argument(s) {', '.join(missing)}")
    return Request(ident, cmd, args)


def encode_reply(
    id: int | str | None, *, result: Any = None, error: str | None = None, code: str = "failed"
) -> bytes:
    """A success reply (``result``, msgpack-able) or, when ``error`` is given, an error reply."""
    if error is None:
        return msgpack.packb({"id": id, "ok": True, "result": result})
    if code not in ERROR_CODES:
        raise ProtocolError(f"unknown error code {code!r}")
    return msgpack.packb({"id": id, "ok": False, "error": error, "code": code})


def decode_reply(payload: Any) -> Reply:
    """Decode and check a control reply."""
    message = _unpack_map(payload, MAX_CONTROL_BYTES, "reply")
    ok, ident = message.get("ok"), message.get("id")
    if not isinstance(ok, bool):
        raise ProtocolError("reply: ok must be true or false")
    if not (ident is None or _is_int(ident) or isinstance(ident, str)):
        raise ProtocolError("reply: id must be an int, a string or nil")
    if ok:
        return Reply(ident, True, result=message.get("result"))
    error, code = message.get("error"), message.get("code")
    if not isinstance(error, str) or code not in ERROR_CODES:
        raise ProtocolError("error reply: needs a string error and a known code")
    return Reply(ident, False, error=error, code=code)


# --- helpers ----------------------------------------------------------------------------------------


def _bytes(frame: Any) -> bytes:
    return bytes(frame.buffer if hasattr(frame, "buffer") else frame)


def _unpack_map(frame: Any, limit: int, what: str) -> dict[str, Any]:
    data = memoryview(frame.buffer if hasattr(frame, "buffer") else frame)
    if data.nbytes > limit:
        raise ProtocolError(f"{what} of {data.nbytes} bytes exceeds the limit of {limit}")
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.ExtraData) as error:
        raise ProtocolError(f"{what} is not valid msgpack: {error}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} must be a msgpack map, got {type(value).__name__}")
    return value


def _check_version(header: dict[str, Any]) -> None:
    version = header.get("version")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {version!r}; this side speaks version {PROTOCOL_VERSION}")


def _check_fields(header: dict[str, Any], fields: dict[str, tuple[type, ...]], what: str) -> None:
    for name, types in fields.items():
        if name not in header:
            raise ProtocolError(f"{what}: missing field {name!r}")
        if not _is_instance(header[name], types):
            raise ProtocolError(
                f"{what}: {name!r} must be {_type_names(types)}, got {_type_name(header[name])}"
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_instance(value: Any, types: tuple[type, ...]) -> bool:
    """isinstance where bool is not an int, and an int is accepted where a float is."""
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def _type_name(value: Any) -> str:
    return "nil" if value is None else type(value).__name__


def _type_names(types: tuple[type, ...]) -> str:
    return " or ".join("nil" if t is type(None) else t.__name__ for t in types)
