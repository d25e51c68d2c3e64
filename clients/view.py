"""``specklenet view``: the live stream in a browser, served on localhost by this client (aiohttp).

The page (:mod:`specklenet.clients.view_page`: HTML + JS, no page reloads) shows four panels: the
displayed target, the latest speckle frame, the reconstruction and a running PCC plot, with the rate,
latency and gaps. This process subscribes to the daemon's stream once and pushes to every open tab
over a WebSocket; each tab has its own sender that always sends the *newest* frames (a slow tab skips
frames instead of queuing them; a closed tab's sender ends with it, costing nothing). Tabs refresh as
often as frames come (each recon message is one refresh; nothing throttles below the stream's rate).

The target image: the recon header carries only ``target_index``, so the view reads the canvases from
the targets file given by ``--targets FILE`` (the file the live job loops over, read locally with h5py;
the daemon's heartbeat names it, and the page warns when the names differ). Without it the target
panel shows the index only.

WebSocket messages to the page: binary ``[uint32 LE n][n bytes of JSON][rows × cols uint8 pixels]``
for images (JSON ``kind`` = recon | speckle | target, ``rows``, ``cols`` and the header fields), and
text JSON ``{"kind": "stats", ...}`` a few times a second. GET ``/state`` answers JSON with the number
of open tabs and messages received (for scripts and tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from specklenet.clients.connection import (
    EXIT_OK,
    EXIT_STATUSES_HELP,
    ClientError,
    add_connection_options,
    keys_from_args,
    subscribe,
)
from specklenet.clients.stream import LiveFigures, SequenceTracker
from specklenet.clients.view_frames import Targets, pack_image, to_uint8
from specklenet.daemon import protocol

STATS_INTERVAL_S = 0.2


def register(subparsers: Any) -> None:
    description = "live view in the browser: target, speckle, reconstruction and PCC (served on localhost)"
    parser = subparsers.add_parser(
        "view", help=description, description=description, epilog=EXIT_STATUSES_HELP
    )
    parser.add_argument(
        "--port", type=int, default=8765, help="HTTP port (default %(default)s; 0 = any free)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to serve on (default %(default)s)")
    parser.add_argument("--targets", type=Path, metavar="FILE", help="targets file, to show the target image")
    add_connection_options(parser, uses_control=False)
    parser.set_defaults(run=run)


class Viewer:
    """One open tab: the newest message of each kind waiting to be sent, and its sender task."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.pending: dict[str, bytes | str] = {}
        self.ready = asyncio.Event()
        self.sent = 0
        self.skipped = 0

    def offer(self, kind: str, message: bytes | str) -> None:
        self.skipped += kind in self.pending  # replaces an unsent older one: a slow tab skips frames
        self.pending[kind] = message
        self.ready.set()

    async def send_forever(self) -> None:
        while not self.ws.closed:
            await self.ready.wait()
            self.ready.clear()
            batch, self.pending = self.pending, {}
            for message in batch.values():
                if isinstance(message, bytes):
                    await self.ws.send_bytes(message)
                else:
                    await self.ws.send_str(message)
                self.sent += 1


class ViewServer:
    """The stream reader and the tabs. Runs on one asyncio loop; not thread-safe."""

    def __init__(self, args: argparse.Namespace, targets: Targets | None) -> None:
        self.args = args
        self.targets = targets
        self.viewers: set[Viewer] = set()
        self.tracker = SequenceTracker()
        self.figures = LiveFigures()
        self.status: dict[str, Any] = {}
        self.connected = False
        self.malformed = 0
        self._target_index: int | None = None
        self._latest: dict[str, bytes] = {}

    # --- HTTP --------------------------------------------------------------------------------------

    def app(self) -> Any:
        from aiohttp import web

        from specklenet.clients.view_page import PAGE_HTML

        async def page(_request: web.Request) -> web.Response:
            return web.Response(text=PAGE_HTML, content_type="text/html")

        async def state(_request: web.Request) -> web.Response:
            tabs = [{"sent": viewer.sent, "skipped": viewer.skipped} for viewer in self.viewers]
            received = dict(self.tracker.received)
            return web.json_response(
                {
                    "viewers": len(self.viewers),
                    "tabs": tabs,
                    "received": received,
                    "restarts": self.tracker.restarts,
                }
            )

        app = web.Application()
        app.router.add_get("/", page)
        app.router.add_get("/state", state)
        app.router.add_get("/ws", self._websocket)
        return app

    async def _websocket(self, request: Any) -> Any:
        from aiohttp import web

        # No permessage-deflate: zlib on every 64 KiB frame costs more CPU than loopback bandwidth.
        ws = web.WebSocketResponse(heartbeat=10.0, compress=False)
        await ws.prepare(request)
        viewer = Viewer(ws)
        self.viewers.add(viewer)
        for kind, message in self._latest.items():  # a new tab starts with the current picture
            viewer.offer(kind, message)
        sender = asyncio.create_task(viewer.send_forever())
        try:
            async for _ in ws:  # the page sends nothing; this ends when the tab closes
                pass
        finally:
            self.viewers.discard(viewer)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        return ws

    def _broadcast(self, kind: str, message: bytes | str) -> None:
        if isinstance(message, bytes):
            self._latest[kind] = message
        for viewer in self.viewers:
            viewer.offer(kind, message)

    # --- stream ------------------------------------------------------------------------------------

    async def read_stream(self) -> None:
        import zmq.asyncio

        context = zmq.asyncio.Context.instance()
        socket = subscribe(
            self.args.stream, ("recon", "speckle", "status"), keys=keys_from_args(self.args), context=context
        )
        monitor = asyncio.create_task(self._watch_connection(socket))
        try:
            while True:
                frames = await socket.recv_multipart(copy=False)
                self.handle(frames, time.time_ns())
        finally:
            monitor.cancel()
            socket.close(linger=0)

    def handle(self, frames: list[Any], t_receive_ns: int) -> None:
        try:
            message = protocol.decode_data(frames)
        except protocol.ProtocolError:
            self.malformed += 1
            return
        header = message.header
        self.tracker.observe(message.topic, int(header["seq"]), int(header["stream_id"]), t_receive_ns)
        self.connected = True  # a message proves it (the monitor may start after the first connect)
        if message.topic == "status":
            self.status = header
            return
        if message.array is None:
            return
        info = {name: header.get(name) for name in ("seq", "frame_id", "target_index", "pcc")}
        self._broadcast(
            message.topic, pack_image(message.topic, to_uint8(message.array, message.topic), info)
        )
        if message.topic == "recon":
            self.figures.add(header, t_receive_ns)
            self._show_target(header.get("target_index"))

    def _show_target(self, index: int | None) -> None:
        if index == self._target_index:
            return
        self._target_index = index
        image = None if index is None or self.targets is None else self.targets.image(index)
        pixels = np.zeros((1, 1), np.uint8) if image is None else image
        self._broadcast(
            "target", pack_image("target", pixels, {"target_index": index, "known": image is not None})
        )

    async def _watch_connection(self, socket: Any) -> None:
        import zmq
        from zmq.utils.monitor import parse_monitor_message

        monitor = socket.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        try:
            while True:
                event = parse_monitor_message(await monitor.recv_multipart())["event"]
                self.connected = event == zmq.EVENT_CONNECTED
        finally:
            monitor.close(linger=0)

    async def publish_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)  # the display's own refresh of the text figures
            self._broadcast("stats", json.dumps(self.stats()))

    def stats(self) -> dict[str, Any]:
        return {
            "kind": "stats",
            "rate_hz": self.figures.rate_hz,
            "latency_ms": self.figures.latency_percentiles_ms(),
            "last_pcc": self.figures.last_pcc,
            "running_pcc": self.figures.running_pcc,
            "gaps": len(self.tracker.gaps),
            "lost": self.tracker.total_lost,
            "restarts": self.tracker.restarts,
            "connected": self.connected,
            "state": self.status.get("state"),
            "model": self.figures.last_header.get("model"),
            "stream": self.args.stream,
            "targets": str(self.targets.path) if self.targets else None,
            "daemon_targets": (self.status.get("running") or {}).get("targets"),
            "targets_mismatch": self._targets_mismatch(),
        }

    def _targets_mismatch(self) -> bool:
        """True when the daemon's live job loops another file than --targets (the heartbeat names it)."""
        running = (self.status.get("running") or {}).get("targets")
        return bool(self.targets and running and Path(running).name != self.targets.path.name)


async def serve(args: argparse.Namespace, targets: Targets | None) -> None:
    from aiohttp import web

    server = ViewServer(args, targets)
    runner = web.AppRunner(server.app(), handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ClientError(f"cannot serve on {args.host}:{args.port}: {error}") from None
    port = runner.addresses[0][1]
    print(f"http://{args.host}:{port}/", flush=True)
    print(f"specklenet view: open http://{args.host}:{port}/ (stream {args.stream})", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(server.read_stream()), asyncio.create_task(server.publish_stats())]
    stopped = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            if task.done():
                task.result()  # a reader that failed (bad address, keys) ends the view with its error
    finally:
        for task in [stopped, *tasks]:
            task.cancel()
        await asyncio.gather(stopped, *tasks, return_exceptions=True)
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    targets = Targets(args.targets) if args.targets else None
    try:
        asyncio.run(serve(args, targets))
    finally:
        if targets is not None:
            targets.close()
    return EXIT_OK
