"""The service's small parts on their own: data-dir paths, systemd notify, the publisher, binding rules."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest
import zmq

from specklenet.daemon import protocol
from specklenet.daemon.errors import ConfigError
from specklenet.daemon.service.notify import Notifier
from specklenet.daemon.service.paths import DataDir, PathMissingError, PathRefusedError
from specklenet.daemon.service.publisher import Publisher
from specklenet.daemon.service.settings import ServiceSettings
from specklenet.daemon.service.sockets import Sockets, check_endpoint, is_local
from specklenet.daemon.settings import load_settings

# --- paths -------------------------------------------------------------------------------------------


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "targets.h5").write_bytes(b"x")
    (tmp_path / "secret.h5").write_bytes(b"x")
    return DataDir(root)


def test_paths_inside_the_data_directory_resolve(data: DataDir) -> None:
    assert data.resolve("sub/targets.h5", must_exist=True) == data.root / "sub" / "targets.h5"
    assert data.resolve("new.h5") == data.root / "new.h5"  # outputs need not exist
    assert data.resolve(str(data.root / "sub" / "targets.h5")) == data.root / "sub" / "targets.h5"


@pytest.mark.parametrize(
    "name", ["../secret.h5", "sub/../../secret.h5", "sub/../targets.h5", "/etc/passwd", ""]
)
def test_paths_leaving_the_data_directory_are_refused(data: DataDir, name: str) -> None:
    with pytest.raises(PathRefusedError):
        data.resolve(name)


def test_a_symlink_out_of_the_data_directory_is_refused(data: DataDir) -> None:
    (data.root / "link.h5").symlink_to(data.root.parent / "secret.h5")
    (data.root / "linkdir").symlink_to(data.root.parent)
    with pytest.raises(PathRefusedError, match="outside"):
        data.resolve("link.h5")
    with pytest.raises(PathRefusedError, match="outside"):
        data.resolve("linkdir/secret.h5")


def test_a_missing_input_is_not_found(data: DataDir) -> None:
    with pytest.raises(PathMissingError, match="targets"):
        data.resolve("nope.h5", must_exist=True, what="targets")
    with pytest.raises(PathMissingError):
        data.resolve("sub", must_exist=True)  # a folder is not a file


# --- notify ------------------------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def test_notifier_sends_the_systemd_messages_byte_exact(notify_socket) -> None:
    path, sock = notify_socket
    now = [0.0]
    notifier = Notifier(path, watchdog_interval_s=10.0, clock=lambda: now[0])
    notifier.ready("idle")
    assert sock.recv(4096) == b"READY=1\nSTATUS=idle"
    notifier.status("live: 25 frames/s")
    assert sock.recv(4096) == b"STATUS=live: 25 frames/s"
    notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    notifier.watchdog()  # too soon: rate-limited to a quarter of the interval
    now[0] = 2.6
    notifier.watchdog()
    notifier.stopping()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert sock.recv(4096) == b"STOPPING=1"


def test_notifier_reads_the_environment_and_is_a_no_op_without_it(notify_socket) -> None:
    path, _ = notify_socket
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert notifier.enabled and notifier.watchdog_interval_s == 4.0
    other_pid = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid() + 1)}
    assert Notifier.from_environment(other_pid).watchdog_interval_s is None  # meant for another process
    quiet = Notifier.from_environment({})
    assert not quiet.enabled
    quiet.ready()  # no socket: nothing happens, nothing raises


def test_notifier_survives_a_vanished_socket(tmp_path: Path) -> None:
    Notifier(str(tmp_path / "gone.sock")).ready()  # logged once, never raised


# --- publisher ---------------------------------------------------------------------------------------


@pytest.fixture
def pub_sub():
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    yield pub, sub
    sub.close(0)
    pub.close(0)
    context.term()


def _first_message(publisher: Publisher, sub: zmq.Socket) -> protocol.DataMessage:
    """Publish status probes until the subscription has propagated (no sleeping)."""
    while not sub.poll(20):
        publisher.publish("status", {"state": "probe", "counters": {}})
    return protocol.decode_data(sub.recv_multipart())


def test_publisher_numbers_each_topic_and_sends_arrays_as_raw_bytes(pub_sub) -> None:
    pub, sub = pub_sub
    publisher = Publisher(pub, clock=lambda: 123, stream_id=42)
    _first_message(publisher, sub)
    while sub.poll(50):
        sub.recv_multipart()
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    header = {"frame_id": 7, "picture": 1, "target_index": None, "t_capture_ns": 5}
    for _ in range(3):
        assert publisher.publish("speckle", header, image)
    messages = [protocol.decode_data(sub.recv_multipart()) for _ in range(3)]
    assert [m.header["seq"] for m in messages] == [0, 1, 2]  # per topic: status has its own numbers
    assert all(m.header["t_publish_ns"] == 123 and m.header["stream_id"] == 42 for m in messages)
    np.testing.assert_array_equal(messages[0].array, image)
    assert publisher.counters()["sent"]["speckle"] == 3


def test_each_publisher_draws_its_own_stream_id() -> None:
    context = zmq.Context()
    ids = set()
    for _ in range(20):  # a daemon run each: a subscriber tells runs apart by this id, not by seq
        publisher = Publisher(context.socket(zmq.PUB))
        assert 0 <= publisher.stream_id < 2**63
        ids.add(publisher.stream_id)
        publisher.close()
    assert len(ids) == 20
    context.term()


def test_publisher_never_blocks_on_a_stalled_subscriber_and_counts_drops() -> None:
    context = zmq.Context()
    push = context.socket(zmq.PUSH)  # unlike PUB, PUSH would block when full: NOBLOCK must drop instead
    push.setsockopt(zmq.SNDHWM, 2)
    port = push.bind_to_random_port("tcp://127.0.0.1")
    pull = context.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 2)
    pull.connect(f"tcp://127.0.0.1:{port}")  # connected, never reading
    publisher = Publisher(push)
    image = np.zeros((256, 256), np.float32)
    header = {"frame_id": 0, "picture": 0, "target_index": 0, "t_capture_ns": 0}
    results = [publisher.publish("speckle", header, image) for _ in range(200)]
    assert not all(results)
    assert publisher.dropped["speckle"] == results.count(False) > 0
    publisher.close()
    publisher.close()
    assert not publisher.publish("speckle", header, image)  # after close: dropped, not raised
    pull.close(0)
    context.term()


# --- settings and binding ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("tcp://127.1.2.3:5555", True),
        ("ipc:///run/specklenet/control", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://192.168.1.10:5555", False),
        ("tcp://eth0:5555", False),
    ],
)
def test_only_loopback_and_ipc_count_as_local(endpoint: str, local: bool) -> None:
    assert is_local(endpoint) is local


def test_a_remote_bind_is_refused_unless_allowed() -> None:
    with pytest.raises(ConfigError, match=r"service\.control_address.*allow_remote"):
        check_endpoint("tcp://0.0.0.0:5555", "control_address", ServiceSettings())
    check_endpoint("tcp://0.0.0.0:5555", "control_address", ServiceSettings(allow_remote=True))
    with pytest.raises(ConfigError, match=r"service\.stream_address"):
        check_endpoint("udp://127.0.0.1:1", "stream_address", ServiceSettings())


def test_service_settings_are_strict(tmp_path: Path) -> None:
    path = tmp_path / "daemon.toml"
    path.write_text('[service]\ndata_dir = "/srv"\nspeckle_evry = 3\n')
    with pytest.raises(ConfigError, match=r"service\.speckle_evry"):
        load_settings(path)
    path.write_text('[service]\nsend_hwm = "ten"\n')
    with pytest.raises(ConfigError, match=r"service\.send_hwm"):
        load_settings(path)
    path.write_text('[service]\ncurve_secret_key_file = "server.key_secret"\n')
    with pytest.raises(ConfigError, match="curve_clients_dir"):
        load_settings(path)
    assert load_settings(REPO_TOML).service == ServiceSettings()  # the documented file = the defaults


REPO_TOML = Path(__file__).resolve().parents[1] / "systemd" / "daemon.toml"


def _curve_request(context: zmq.Context, address: str, server_public: bytes, client: tuple[bytes, bytes]):
    dealer = context.socket(zmq.DEALER)
    dealer.curve_publickey, dealer.curve_secretkey = client
    dealer.curve_serverkey = server_public
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(address)
    dealer.send(protocol.encode_request("status", id=1))
    return dealer


def test_curve_admits_only_listed_client_keys(tmp_path: Path) -> None:
    import zmq.auth

    server_dir, clients_dir, others = tmp_path / "server", tmp_path / "clients", tmp_path / "others"
    for folder in (server_dir, clients_dir, others):
        folder.mkdir()
    _, server_secret = zmq.auth.create_certificates(server_dir, "server")
    _, good_secret = zmq.auth.create_certificates(clients_dir, "lab-pc")
    _, bad_secret = zmq.auth.create_certificates(others, "stranger")
    context = zmq.Context()
    settings = ServiceSettings(
        control_address="tcp://127.0.0.1:0",
        stream_address="tcp://127.0.0.1:0",
        curve_secret_key_file=str(server_secret),
        curve_clients_dir=str(clients_dir),
    )
    sockets = Sockets(context, settings)
    try:
        address = sockets.control.getsockopt_string(zmq.LAST_ENDPOINT)
        server_public, _ = zmq.auth.load_certificate(server_secret)
        good = _curve_request(context, address, server_public, zmq.auth.load_certificate(good_secret))
        bad = _curve_request(context, address, server_public, zmq.auth.load_certificate(bad_secret))
        assert sockets.control.poll(10_000)
        frames = sockets.control.recv_multipart()
        assert protocol.decode_request(frames[-1]).cmd == "status"
        sockets.control.send_multipart([frames[0], protocol.encode_reply(1, result="ok")])
        assert protocol.decode_reply(good.recv()).result == "ok"
        assert not sockets.control.poll(300)  # the stranger never got through the handshake
        good.close()
        bad.close()
    finally:
        sockets.close()
        context.term()


def test_notifier_never_blocks_on_a_reader_that_stalled(notify_socket) -> None:
    path, _ = notify_socket  # bound, never read from here on: its queue fills up
    notifier = Notifier(path)
    for _ in range(5_000):
        notifier.status("live: 50 frames/s")
    assert notifier.dropped > 0  # dropped and counted, the caller went on
