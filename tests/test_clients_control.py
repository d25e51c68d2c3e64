"""Control commands against a fake daemon: requests, results, refusals and timeouts as exit statuses."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

import pytest
import zmq
from clients_helpers import wait_for
from fake_daemon import FakeDaemon, Refusal

from specklenet.clients import cli
from specklenet.clients.connection import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ControlClient,
    CurveKeys,
    DaemonUnreachableError,
)


@pytest.fixture
def daemon():
    with FakeDaemon(rate_hz=50, speckle=False) as fake:
        yield fake


def free_address() -> str:
    """A loopback TCP address nobody listens on (the port was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(
    ("argv", "cmd", "args"),
    [
        (["status"], "status", {}),
        (["acquire", "t.h5", "-o", "p.h5"], "acquire", {"targets": "t.h5", "output": "p.h5"}),
        (
            ["acquire", "t.h5", "-o", "p.h5", "--resume"],
            "acquire",
            {"targets": "t.h5", "output": "p.h5", "resume": True},
        ),
        (["live", "--model", "m.onnx", "--targets", "t.h5"], "live", {"model": "m.onnx", "targets": "t.h5"}),
        (["stop"], "stop", {}),
        (["load-model", "m.onnx"], "load_model", {"model": "m.onnx"}),
        (["shutdown"], "shutdown", {}),
    ],
)
def test_each_command_sends_its_request(daemon, capsys, argv, cmd, args) -> None:
    daemon.replies[cmd] = {"state": "live", "counters": {"frames": 3}}
    assert cli.main([*argv, "--control", daemon.control]) == EXIT_OK
    request = daemon.requests[-1]
    assert (request.cmd, request.args) == (cmd, args)
    assert "state: live" in capsys.readouterr().out


def test_status_json_prints_the_result(daemon, capsys) -> None:
    daemon.replies["status"] = {"state": "idle", "counters": {"frames": 0}}
    assert cli.main(["status", "--json", "--control", daemon.control]) == EXIT_OK
    assert json.loads(capsys.readouterr().out) == {"state": "idle", "counters": {"frames": 0}}


def test_nested_results_print_as_dotted_keys(daemon, capsys) -> None:
    daemon.replies["status"] = {"state": "live", "counters": {"lost": 2}}
    cli.main(["status", "--control", daemon.control])
    assert "counters.lost: 2" in capsys.readouterr().out.splitlines()


def test_a_refusal_prints_the_daemon_reason_and_exits_1(daemon, capsys) -> None:
    daemon.replies["acquire"] = Refusal("a live job is running; stop it first", "busy")
    status = cli.main(["acquire", "t.h5", "-o", "p.h5", "--control", daemon.control])
    assert status == EXIT_FAILED
    err = capsys.readouterr().err
    assert "busy" in err and "a live job is running; stop it first" in err


def test_no_daemon_exits_3_naming_the_address(capsys) -> None:
    address = free_address()
    status = cli.main(["status", "--control", address, "--timeout", "0.3"])
    assert status == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert address in err and "0.3 s" in err and "specklenetd serve" in err


def test_usage_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["acquire", "t.h5"])  # -o missing
    assert exit_info.value.code == EXIT_USAGE
    assert cli.main([]) == EXIT_USAGE


def test_help_documents_the_exit_statuses(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["status", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "3 the daemon is unreachable" in out and "2 usage error" in out


def test_client_recovers_after_a_timeout_and_ignores_the_late_reply() -> None:
    """Lazy Pirate: after a timed-out request the next one gets its own reply, not a stale one."""
    address = free_address()
    client = ControlClient(address, timeout_s=0.2)
    with pytest.raises(DaemonUnreachableError):
        client.request("status")
    with FakeDaemon(control=address, rate_hz=20, speckle=False) as fake:
        fake.replies["status"] = {"state": "idle"}
        client.timeout_s = 10.0
        assert client.request("status") == {"state": "idle"}
        assert [r.cmd for r in fake.requests] == ["status"]  # the timed-out request never arrived
    client.close()


@pytest.fixture(scope="module")
def curve_keys(tmp_path_factory) -> dict[str, Path]:
    import zmq.auth

    folder = tmp_path_factory.mktemp("keys")
    (folder / "allowed").mkdir()
    server_public, server_secret = zmq.auth.create_certificates(folder, "server")
    client_public, client_secret = zmq.auth.create_certificates(folder, "client")
    zmq.auth.create_certificates(folder, "stranger")
    (folder / "allowed" / "client.key").write_bytes(Path(client_public).read_bytes())
    return {
        "server_public": Path(server_public),
        "server_secret": Path(server_secret),
        "client_secret": Path(client_secret),
        "stranger_secret": folder / "stranger.key_secret",
        "allowed": folder / "allowed",
    }


@pytest.fixture
def secure_daemon(curve_keys):
    import zmq.auth

    _, server_secret = zmq.auth.load_certificate(curve_keys["server_secret"])
    fake = FakeDaemon(
        rate_hz=50,
        speckle=False,
        curve_server_secret=server_secret,
        curve_allowed_dir=str(curve_keys["allowed"]),
    )
    with fake:
        yield fake


def test_curve_keys_reach_a_secure_daemon(secure_daemon, curve_keys, capsys) -> None:
    argv = ["status", "--control", secure_daemon.control, "--timeout", "10"]
    keys = [
        "--server-key",
        str(curve_keys["server_public"]),
        "--client-key",
        str(curve_keys["client_secret"]),
    ]
    assert cli.main([*argv, *keys]) == EXIT_OK
    assert secure_daemon.requests[-1].cmd == "status"


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_a_secure_daemon_is_unreachable_without_allowed_keys(secure_daemon, curve_keys, capsys, who) -> None:
    argv = ["status", "--control", secure_daemon.control, "--timeout", "0.5"]
    if who == "stranger":
        argv += [
            "--server-key",
            str(curve_keys["server_public"]),
            "--client-key",
            str(curve_keys["stranger_secret"]),
        ]
    assert cli.main(argv) == EXIT_UNREACHABLE
    assert not secure_daemon.requests
    assert ("CurveZMQ keys" in capsys.readouterr().err) == (who == "stranger")


class _RefusedFirstSocket(zmq.Socket):
    """Connects, then returns only once the daemon refused the handshake: the DEALER has no peer left
    (ZeroMQ does not reconnect after a failed handshake), the state in which a send would block."""

    def connect(self, address: str) -> None:  # type: ignore[override]
        super().connect(address)
        wait_for(lambda: not self.poll(0, zmq.POLLOUT), "the secure daemon refusing the handshake")


class _RefusedFirstContext(zmq.Context):
    _socket_class = _RefusedFirstSocket


def test_a_request_after_a_refused_handshake_times_out_instead_of_blocking(secure_daemon) -> None:
    context = _RefusedFirstContext()
    client = ControlClient(secure_daemon.control, timeout_s=0.3, context=context)
    outcome: list[BaseException] = []

    def request() -> None:
        try:
            client.request("status")
        except BaseException as error:  # handed to the test thread, whatever it is
            outcome.append(error)

    thread = threading.Thread(target=request, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), "the request blocked in send (a DEALER without a peer)"
    assert len(outcome) == 1 and isinstance(outcome[0], DaemonUnreachableError), outcome
    client.close()
    context.term()


def test_half_a_key_pair_is_a_clear_error(curve_keys, capsys) -> None:
    status = cli.main(["status", "--server-key", str(curve_keys["server_public"])])
    assert status == EXIT_FAILED
    assert "both --server-key and --client-key" in capsys.readouterr().err
    with pytest.raises(Exception, match="no secret key"):
        CurveKeys.load(curve_keys["server_public"], curve_keys["server_public"])


def test_zmq_curve_is_available() -> None:
    assert zmq.has("curve")
