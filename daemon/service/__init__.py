"""The live service, ``specklenetd serve``: the bench held open, commands over ZeroMQ, data streamed out.

Modules (each small, each testable alone):

* :mod:`.settings` — the ``[service]`` table (:class:`ServiceSettings`): data directory, addresses,
  CurveZMQ keys, stream decimation and high-water mark.
* :mod:`.paths` — :class:`DataDir`: every path in a command must lie inside the data directory.
* :mod:`.sockets` — binding the control ROUTER and stream PUB (loopback unless allowed; CurveZMQ).
* :mod:`.publisher` — :class:`Publisher` (contract C6): ``publish(topic, header, array)``, never blocks.
* :mod:`.control` — :class:`ControlChannel`: ROUTER envelopes (REQ or DEALER), strict decoding,
  errors as replies, counters of what was dropped.
* :mod:`.notify` — :class:`Notifier`: the systemd notification protocol (READY, STATUS, WATCHDOG,
  STOPPING) in a few lines, no dependency.
* :mod:`.jobs` — :class:`JobRunner` (one job at a time on its own thread) and the jobs ``acquire``
  and ``live``.
* :mod:`.service` — :class:`Service`: the commands, the status heartbeat, the main loop.
* :mod:`.serve` — the ``serve`` subcommand (exit status 78 on a configuration error).
"""
