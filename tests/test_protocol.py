"""The wire protocol: round trips, and strict refusal of anything malformed (property-based too)."""

from __future__ import annotations

import contextlib

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specklenet.daemon import protocol
from specklenet.daemon.protocol import ProtocolError


def recon_header(**overrides: object) -> dict[str, object]:
    header: dict[str, object] = {
        "stream_id": 99,
        "seq": 7,
        "t_publish_ns": 2_000,
        "frame_id": 41,
        "picture": 3,
        "target_index": 12,
        "pcc": 0.8,
        "t_capture_ns": 1_000,
        "model": "case2.onnx",
        "case": "2",
    }
    header.update(overrides)
    return header


def test_data_round_trip_keeps_header_and_array_without_copy() -> None:
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    frames = protocol.encode_data("recon", recon_header(), image)
    assert frames[0] == b"recon" and isinstance(frames[2], memoryview)
    assert np.shares_memory(np.frombuffer(frames[2], np.float32), image)  # no copy on the way out
    message = protocol.decode_data([bytes(frame) for frame in frames])
    assert message.topic == "recon"
    assert message.header["version"] == protocol.PROTOCOL_VERSION
    assert message.header["shape"] == [3, 4] and message.header["dtype"] == "float32"
    assert message.header["target_index"] == 12 and message.header["pcc"] == pytest.approx(0.8)
    np.testing.assert_array_equal(message.array, image)
    assert not message.array.flags.writeable


def test_status_message_has_no_array() -> None:
    frames = protocol.encode_data(
        "status", {"stream_id": 1, "seq": 0, "t_publish_ns": 5, "state": "idle", "counters": {}}
    )
    message = protocol.decode_data(frames)
    assert message.array is None and message.header["state"] == "idle"


@pytest.mark.parametrize(
    ("frames", "complaint"),
    [
        ([b"recon"], "2 or 3 frames"),
        ([b"nope", msgpack.packb({})], "unknown topic"),
        ([b"recon", b"\xc1"], "not valid msgpack"),
        ([b"recon", msgpack.packb([1, 2])], "must be a msgpack map"),
        ([b"recon", msgpack.packb({**recon_header(), "version": 99})], "protocol version 99"),
        ([b"recon", msgpack.packb({"version": 1, **recon_header(frame_id="x")})], "'frame_id' must be int"),
        ([b"recon", msgpack.packb({"version": 1, **recon_header(pcc=True)})], "'pcc' must be float or nil"),
        ([b"speckle", msgpack.packb({"version": 1, "seq": 1, "t_publish_ns": 1})], "missing field"),
        (
            [
                b"status",
                msgpack.packb({"version": 1, "seq": 1, "t_publish_ns": 1, "state": "idle", "counters": {}}),
            ],
            "missing field.*stream_id",
        ),
        (
            [
                b"recon",
                msgpack.packb({"version": 1, **recon_header(), "shape": [2], "dtype": "float32"}),
                b"abc",
            ],
            "needs 8 bytes, got 3",
        ),
        (
            [
                b"recon",
                msgpack.packb({"version": 1, **recon_header(), "shape": [1], "dtype": "object"}),
                b"x",
            ],
            "dtype 'object'",
        ),
        ([b"recon", b"\x00" * (protocol.MAX_HEADER_BYTES + 1)], "exceeds the limit"),
    ],
)
def test_decode_data_refuses_malformed_messages(frames: list[bytes], complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        protocol.decode_data(frames)


def test_request_round_trip_and_reply_kinds() -> None:
    request = protocol.decode_request(
        protocol.encode_request("acquire", {"targets": "t.h5", "output": "p.h5"}, id=3)
    )
    assert (request.id, request.cmd, request.args) == (3, "acquire", {"targets": "t.h5", "output": "p.h5"})
    ok = protocol.decode_reply(protocol.encode_reply(3, result={"state": "idle"}))
    assert ok.ok and ok.result == {"state": "idle"} and ok.id == 3
    failed = protocol.decode_reply(protocol.encode_reply("a", error="a job is running", code="busy"))
    assert not failed.ok and failed.code == "busy" and failed.error == "a job is running"


@pytest.mark.parametrize(
    ("message", "complaint"),
    [
        ({"id": 1, "cmd": "explode"}, "unknown command 'explode'"),
        ({"id": 1, "cmd": "acquire", "args": {"targets": "t.h5"}}, "missing argument"),
        ({"id": 1, "cmd": "acquire", "args": {"targets": 5, "output": "p"}}, "'targets' must be str"),
        (
            {"id": 1, "cmd": "acquire", "args": {"targets": "t", "output": "p", "resume": 1}},
            "'resume' must be bool",
        ),
        ({"id": 1, "cmd": "status", "args": {"verbose": True}}, "unknown argument 'verbose'"),
        ({"id": 1.5, "cmd": "status"}, "id must be"),
        ({"id": 1, "cmd": "status", "extra": 1}, "unknown field"),
        ({"id": 1, "cmd": "status", "args": []}, "args must be a map"),
    ],
)
def test_decode_request_refuses_bad_requests(message: dict[str, object], complaint: str) -> None:
    with pytest.raises(ProtocolError, match=complaint):
        protocol.decode_request(msgpack.packb(message))


def test_encode_request_checks_before_sending() -> None:
    with pytest.raises(ProtocolError, match="missing argument"):
        protocol.encode_request("live", {"model": "m.onnx"})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_decoders_raise_only_protocol_errors_on_arbitrary_bytes(payload: bytes) -> None:
    for decode in (protocol.decode_request, protocol.decode_reply):
        with contextlib.suppress(ProtocolError):
            decode(payload)
    with contextlib.suppress(ProtocolError):
        protocol.decode_data([b"recon", payload, payload])


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "cmd", "args", "x"]), msgpack_values, max_size=4))
def test_decode_request_on_arbitrary_maps_accepts_only_valid_requests(message: dict[str, object]) -> None:
    try:
        request = protocol.decode_request(msgpack.packb(message))
    except ProtocolError:
        return
    assert request.cmd in protocol.COMMANDS and isinstance(request.args, dict)
    for name, value in request.args.items():
        assert isinstance(value, protocol.COMMANDS[request.cmd][name][0])
