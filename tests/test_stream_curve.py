"""With CurveZMQ configured, the stream PUB is a CURVE server too: an allowed client's SUB receives,
a plain SUB and a stranger's SUB never get through the handshake. And the clients' --server-key /
--client-key reach both sockets of a fake secure daemon."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import zmq
import zmq.auth

from specklenet.daemon import protocol
from specklenet.daemon.service.settings import ServiceSettings
from specklenet.daemon.service.sockets import Sockets


def _sub(context: zmq.Context, address: str, server_public: bytes | None, client: tuple | None) -> zmq.Socket:
    sub = context.socket(zmq.SUB)
    sub.linger = 0
    if client is not None:
        sub.curve_publickey, sub.curve_secretkey = client
        sub.curve_serverkey = server_public
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(address)
    return sub


def test_the_stream_admits_only_listed_client_keys(tmp_path: Path) -> None:
    server_dir, clients_dir, others = tmp_path / "server", tmp_path / "clients", tmp_path / "others"
    for folder in (server_dir, clients_dir, others):
        folder.mkdir()
    _, server_secret = zmq.auth.create_certificates(server_dir, "server")
    _, good_secret = zmq.auth.create_certificates(clients_dir, "lab-pc")
    _, bad_secret = zmq.auth.create_certificates(others, "stranger")
    server_public, _ = zmq.auth.load_certificate(server_secret)
    context = zmq.Context()
    settings = ServiceSettings(
        control_address="tcp://127.0.0.1:0",
        stream_address="tcp://127.0.0.1:0",
        curve_secret_key_file=str(server_secret),
        curve_clients_dir=str(clients_dir),
    )
    sockets = Sockets(context, settings)
    subs: list[zmq.Socket] = []
    try:
        address = sockets.stream.getsockopt_string(zmq.LAST_ENDPOINT)
        good = _sub(context, address, server_public, zmq.auth.load_certificate(good_secret))
        stranger = _sub(context, address, server_public, zmq.auth.load_certificate(bad_secret))
        plain = _sub(context, address, None, None)
        subs += [good, stranger, plain]
        received, seq, end = 0, 0, time.monotonic() + 60
        while received < 20 and time.monotonic() < end:
            frames = protocol.encode_data(
                "status", {"stream_id": 1, "seq": seq, "t_publish_ns": 0, "state": "idle", "counters": {}}
            )
            sockets.stream.send_multipart(frames)
            seq += 1
            if good.poll(20):
                good.recv_multipart()
                received += 1
        assert received == 20
        # All three connected together; the allowed one got 20 messages, the others nothing.
        assert not stranger.poll(0) and not plain.poll(0)
    finally:
        for sub in subs:
            sub.close(linger=0)
        sockets.close()
        context.term()


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "allowed").mkdir()
    server_public, server_secret = zmq.auth.create_certificates(tmp_path, "server")
    client_public, client_secret = zmq.auth.create_certificates(tmp_path, "client")
    (tmp_path / "allowed" / "client.key").write_bytes(Path(client_public).read_bytes())
    return {"public": Path(server_public), "secret": Path(server_secret), "client": Path(client_secret)}


def test_watch_reads_a_secure_stream_with_keys(keys: dict[str, Path]) -> None:
    from clients_helpers import ClientProcess
    from fake_daemon import FakeDaemon

    _, server_secret = zmq.auth.load_certificate(keys["secret"])
    allowed = str(keys["client"].parent / "allowed")
    with FakeDaemon(
        rate_hz=100, speckle=False, curve_server_secret=server_secret, curve_allowed_dir=allowed
    ) as fake:
        client = ClientProcess(
            "watch",
            "--json",
            "--stream",
            fake.stream,
            "--server-key",
            str(keys["public"]),
            "--client-key",
            str(keys["client"]),
        )
        lines = client.json_lines(lambda line: line["event"] == "recon", "a reconstruction over CURVE")
        status, err = client.stop()
    assert status == 0, err
    assert lines[-1]["model"] == "fake.onnx"
