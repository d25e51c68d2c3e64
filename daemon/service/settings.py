"""The ``[service]`` table of the settings file (``systemd/daemon.toml`` documents every key).

Immutable; thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from specklenet.daemon.errors import ConfigError


@dataclass(frozen=True)
class ServiceSettings:
    """``[service]``: what ``specklenetd serve`` binds, where its files live, what it streams.

    Attributes:
        data_dir: every path in a command (targets, pairs files, models) is relative to this folder
            and must stay inside it.
        control_address: ZeroMQ endpoint of the control ROUTER (requests and replies).
        stream_address: ZeroMQ endpoint of the data PUB (topics ``recon``, ``speckle``, ``status``).
        allow_remote: bind to addresses other than loopback / ipc (refused otherwise).
        curve_secret_key_file: the server's CurveZMQ certificate (``zmq.auth.create_certificates``'s
            ``.key_secret``); when set, the control socket accepts only CURVE clients ...
        curve_clients_dir: ... whose public certificates (``*.key``) lie in this folder.
        model: ONNX model loaded at start-up (relative to ``data_dir``); "" = none until ``live``.
        speckle_every: publish every n-th camera frame on ``speckle``; 0 = never.
        status_interval_s: period of the ``status`` heartbeat (and of the STATUS= line to systemd).
        send_hwm: messages queued per subscriber before newer ones are dropped (PUB SNDHWM); live
            inference publishes a matching window (9+ frames) at a time, so keep it well above that.
        stop_timeout_s: how long a job may take to stop (DMD halted, queues drained) at shutdown.
    """

    data_dir: str = "/var/lib/specklenet"
    control_address: str = "tcp://127.0.0.1:5555"
    stream_address: str = "tcp://127.0.0.1:5556"
    allow_remote: bool = False
    curve_secret_key_file: str = ""
    curve_clients_dir: str = ""
    model: str = ""
    speckle_every: int = 10
    status_interval_s: float = 1.0
    send_hwm: int = 32
    stop_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.data_dir:
            raise ConfigError("service.data_dir: must name a folder")
        if self.speckle_every < 0:
            raise ConfigError(f"service.speckle_every: must be >= 0, got {self.speckle_every}")
        if not 0 < self.status_interval_s <= 60:
            raise ConfigError(f"service.status_interval_s: must be in (0, 60], got {self.status_interval_s}")
        if self.send_hwm < 1:
            raise ConfigError(f"service.send_hwm: must be >= 1, got {self.send_hwm}")
        if self.stop_timeout_s <= 0:
            raise ConfigError(f"service.stop_timeout_s: must be > 0, got {self.stop_timeout_s}")
        if bool(self.curve_secret_key_file) != bool(self.curve_clients_dir):
            raise ConfigError(
                "service.curve_secret_key_file and service.curve_clients_dir: set both (CurveZMQ on the "
                "control socket) or neither"
            )
