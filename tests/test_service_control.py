"""The control channel: REQ and DEALER envelopes, errors as replies, and arbitrary input (hypothesis)."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
import zmq
from hypothesis import given, settings
from hypothesis import strategies as st

from specklenet.daemon import protocol
from specklenet.daemon.service.control import CommandError, ControlChannel


class Recorder:
    """A handler that records requests and answers like a tiny service."""

    def __init__(self) -> None:
        self.requests: list[protocol.Request] = []

    def __call__(self, request: protocol.Request) -> Any:
        self.requests.append(request)
        if request.cmd == "acquire":
            raise CommandError("busy", "a live job is running")
        if request.cmd == "stop":
            raise RuntimeError("boom")
        if request.cmd == "shutdown":
            return object()  # not encodable
        return {"state": "idle"}


def reply_of(frames: list[bytes] | None) -> protocol.Reply:
    assert frames is not None
    return protocol.decode_reply(frames[-1])


def test_dealer_and_req_envelopes_are_answered_in_kind() -> None:
    channel = ControlChannel(None, Recorder())
    request = protocol.encode_request("status", id=5)
    dealer = channel.handle([b"client", request])
    assert dealer is not None and dealer[0] == b"client" and len(dealer) == 2
    req = channel.handle([b"client", b"", request])
    assert req is not None and req[:2] == [b"client", b""] and len(req) == 3
    assert reply_of(dealer) == reply_of(req) == protocol.Reply(5, True, result={"state": "idle"})


@pytest.mark.parametrize(
    ("payload", "code", "ident"),
    [
        (b"\xc1garbage", "bad_request", None),
        (msgpack.packb([1, 2]), "bad_request", None),
        (msgpack.packb({"id": 3, "cmd": "fly"}), "unknown_command", 3),
        (
            msgpack.packb({"id": "x", "cmd": "acquire", "args": {"targets": 1, "output": "o"}}),
            "bad_request",
            "x",
        ),
        (msgpack.packb({"id": 4, "cmd": "status", "args": {}, "pad": "y" * 70_000}), "bad_request", None),
    ],
)
def test_bad_requests_get_error_replies_with_their_id(payload: bytes, code: str, ident: Any) -> None:
    channel = ControlChannel(None, Recorder())
    reply = reply_of(channel.handle([b"c", payload]))
    assert (reply.ok, reply.code, reply.id) == (False, code, ident)
    assert channel.counters[f"error.{code}"] == 1


def test_handler_errors_become_replies() -> None:
    channel = ControlChannel(None, Recorder())
    busy = reply_of(
        channel.handle([b"c", protocol.encode_request("acquire", {"targets": "t", "output": "o"}, id=1)])
    )
    assert (busy.ok, busy.code, busy.error) == (False, "busy", "a live job is running")
    crash = reply_of(channel.handle([b"c", protocol.encode_request("stop", id=2)]))
    assert (crash.ok, crash.code, crash.id) == (False, "failed", 2) and "boom" in crash.error
    unencodable = reply_of(channel.handle([b"c", protocol.encode_request("shutdown", id=3)]))
    assert (unencodable.ok, unencodable.code) == (False, "failed")


def test_wrong_multipart_shapes_are_answered_or_dropped() -> None:
    channel = ControlChannel(None, Recorder())
    assert channel.handle([b"only-identity"]) is None
    assert channel.counters["dropped"] == 1
    request = protocol.encode_request("status", id=1)
    two_parts = reply_of(channel.handle([b"c", request, request]))
    assert (two_parts.ok, two_parts.code) == (False, "bad_request")
    req_two_parts = channel.handle([b"c", b"", request, request])
    assert req_two_parts is not None and req_two_parts[1] == b"" and not reply_of(req_two_parts).ok


frames_strategy = st.lists(st.binary(max_size=200), min_size=0, max_size=5)
maps = st.dictionaries(
    st.sampled_from(["id", "cmd", "args", "x"]),
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**64 - 1),
        st.floats(allow_nan=True),
        st.text(max_size=20),
        st.sampled_from(list(protocol.COMMANDS)),
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(st.text(max_size=8), st.integers(-(2**63), 2**63), st.booleans()),
            max_size=4,
        ),
        st.lists(st.integers(min_value=-(2**63), max_value=2**63), max_size=3),
    ),
)


@settings(max_examples=400, deadline=None)
@given(identity=st.binary(min_size=1, max_size=8), frames=frames_strategy)
def test_arbitrary_frames_never_raise(identity: bytes, frames: list[bytes]) -> None:
    channel = ControlChannel(None, Recorder())
    reply = channel.handle([identity, *frames])
    if reply is not None:
        assert reply[0] == identity
        protocol.decode_reply(reply[-1])  # always a well-formed reply


@settings(max_examples=400, deadline=None)
@given(message=maps, req_style=st.booleans())
def test_arbitrary_maps_get_exactly_one_well_formed_reply(message: dict[str, Any], req_style: bool) -> None:
    handler = Recorder()
    channel = ControlChannel(None, handler)
    envelope = [b"c", b""] if req_style else [b"c"]
    reply = reply_of(channel.handle([*envelope, msgpack.packb(message)]))
    try:
        request = protocol.decode_request(msgpack.packb(message))
    except protocol.ProtocolError:
        assert not reply.ok and reply.code in ("bad_request", "unknown_command")
        assert handler.requests == []  # the handler only ever sees valid requests
    else:
        assert handler.requests == [request]
        assert reply.id == request.id


def test_serve_answers_req_and_dealer_clients_over_a_real_socket() -> None:
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    channel = ControlChannel(router, Recorder())
    req = context.socket(zmq.REQ)
    dealer = context.socket(zmq.DEALER)
    for client in (req, dealer):
        client.connect(f"tcp://127.0.0.1:{port}")
    req.send(protocol.encode_request("status", id="req"))
    dealer.send(protocol.encode_request("status", id="dealer"))
    dealer.send(b"junk")
    while channel.counters["received"] < 3:
        channel.serve(1000)
    assert protocol.decode_reply(req.recv()).id == "req"
    assert protocol.decode_reply(dealer.recv()).id == "dealer"
    assert protocol.decode_reply(dealer.recv()).code == "bad_request"
    for sock in (req, dealer, router):
        sock.close(0)
    context.term()
