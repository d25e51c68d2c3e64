"""``specklenet view`` against a fake daemon: tabs get frames, closed tabs cost nothing, and the page
drawn by real headless Chromium shows the four panels (screenshot pixel statistics)."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import struct
import subprocess
import urllib.request
from pathlib import Path

import aiohttp
import h5py
import numpy as np
import pytest
from chromium import Chromium, find
from clients_helpers import DEADLINE_S, ClientProcess, wait_for
from fake_daemon import FakeDaemon

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def write_targets(path: Path, count: int = 8) -> np.ndarray:
    """A minimal targets file: /canvases uint8 [index, row, column], a bright square per index."""
    canvases = np.zeros((count, 128, 128), np.uint8)
    for index in range(count):
        top = 16 + 8 * index
        canvases[index, top : top + 40, 32:96] = 255
    with h5py.File(path, "w") as file:
        file["canvases"] = canvases
    return canvases


@pytest.fixture
def view(tmp_path):
    write_targets(tmp_path / "targets.h5")
    with FakeDaemon(rate_hz=60) as fake:
        client = ClientProcess(
            "view", "--port", "0", "--targets", str(tmp_path / "targets.h5"), "--stream", fake.stream
        )
        try:
            url = client.lines.get(timeout=DEADLINE_S).strip()
            assert url.startswith("http://127.0.0.1:")
            yield url
        finally:
            status, err = client.stop()
            assert status == 0, err


def unpack(message: bytes) -> tuple[dict, np.ndarray]:
    (length,) = struct.unpack_from("<I", message)
    meta = json.loads(message[4 : 4 + length])
    return meta, np.frombuffer(message[4 + length :], np.uint8).reshape(meta["rows"], meta["cols"])


async def _receive(
    ws: aiohttp.ClientWebSocketResponse, kinds: set[str]
) -> dict[str, tuple[dict, np.ndarray]]:
    seen: dict[str, tuple[dict, np.ndarray]] = {}
    while not kinds <= set(seen):
        message = await ws.receive(timeout=DEADLINE_S)
        if message.type == aiohttp.WSMsgType.BINARY:
            meta, pixels = unpack(message.data)
            seen[meta["kind"]] = (meta, pixels)
        elif message.type == aiohttp.WSMsgType.TEXT:
            seen["stats"] = (json.loads(message.data), np.zeros(0))
    return seen


def test_tabs_receive_frames_and_a_closed_tab_is_forgotten(view: str) -> None:
    async def scenario() -> None:
        async with aiohttp.ClientSession() as session:
            first = await session.ws_connect(view + "ws")
            second = await session.ws_connect(view + "ws")
            for ws in (first, second):
                seen = await _receive(ws, {"recon", "speckle", "target", "stats"})
                meta, pixels = seen["recon"]
                assert pixels.shape == (64, 64) and pixels.max() > 200 and meta["target_index"] is not None
                target_meta, target = seen["target"]
                assert target_meta["known"] and target.shape == (128, 128) and target.max() == 255
                assert seen["speckle"][1].shape == (256, 256) and seen["speckle"][1].std() > 10
                assert seen["stats"][0]["rate_hz"] > 0
            async with session.get(view + "state") as response:
                assert (await response.json())["viewers"] == 2
            await first.close()

            async def viewers() -> int:
                async with session.get(view + "state") as response:
                    return (await response.json())["viewers"]

            for _ in range(int(DEADLINE_S / 0.05)):
                if await viewers() == 1:
                    break
                await asyncio.sleep(0.05)
            assert await viewers() == 1
            await _receive(second, {"recon"})  # the other tab goes on
            await second.close()

    asyncio.run(scenario())


CHROMIUM = find()
DRAWN = (
    "(s => s && s.refreshes >= 30 && s.kinds.target && s.kinds.speckle && s.kinds.stats)(window.specklenet)"
)
"""True once the page drew 30 reconstructions and at least one target, speckle and stats message."""
RECT = (
    "id => { const r = document.getElementById(id).getBoundingClientRect(); "
    "return [id, [r.x, r.y, r.width, r.height]]; }"
)


def box(rects: dict[str, list[float]], name: str) -> list[int]:
    return [round(value) for value in rects[name]]


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")
def test_chromium_draws_the_four_panels(view: str, tmp_path: Path) -> None:
    from PIL import Image

    panels = ["target", "speckle", "recon", "pcc"]

    async def scenario() -> tuple[bytes, dict]:
        async with Chromium(CHROMIUM, tmp_path / "profile") as browser:
            await browser.call("Page.enable")
            await browser.call(
                "Emulation.setDeviceMetricsOverride", width=760, height=880, deviceScaleFactor=1, mobile=False
            )
            await browser.call("Page.navigate", url=view)
            for _ in range(int(DEADLINE_S / 0.1)):
                if await browser.evaluate(DRAWN):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(
                    f"the page drew too little: {await browser.evaluate('JSON.stringify(window.specklenet)')}"
                )
            rects = await browser.evaluate(f"Object.fromEntries({json.dumps(panels)}.map({RECT}))")
            return await browser.screenshot(), rects

    png, rects = asyncio.run(scenario())
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "view.png").write_bytes(png)
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.float64)
    assert image.std() > 10, "blank screenshot"
    for name in panels:
        left, top, width, height = box(rects, name)
        region = image[top + 2 : top + height - 2, left + 2 : left + width - 2]
        assert region.size and region.std() > 15, f"panel {name} looks blank (std {region.std():.1f})"
    # The target panel shows a bright bar on black; the PCC panel draws a blue line.
    left, top, width, height = box(rects, "target")
    target = image[top : top + height, left : left + width].mean(axis=2)
    assert 0.1 < np.mean(target > 200) < 0.5
    left, top, width, height = box(rects, "pcc")
    pcc = image[top : top + height, left : left + width]
    blue = (pcc[..., 2] > 180) & (pcc[..., 0] < 150)
    assert blue.sum() > 100, "no PCC curve"


def test_view_lives_through_a_daemon_restart(tmp_path: Path) -> None:
    fake = FakeDaemon(rate_hz=100, speckle=False).start()
    client = ClientProcess("view", "--port", "0", "--stream", fake.stream)

    def state() -> dict:
        with urllib.request.urlopen(url + "state") as response:
            return json.load(response)

    try:
        url = client.lines.get(timeout=DEADLINE_S).strip()
        wait_for(lambda: state()["received"].get("recon", 0) >= 10, "10 reconstructions")
        fake.stop()
        fake = FakeDaemon(control=fake.control, stream=fake.stream, rate_hz=100, speckle=False).start()
        wait_for(lambda: state()["restarts"] == 1, "the restart noticed")
        before = state()["received"]["recon"]
        wait_for(lambda: state()["received"]["recon"] >= before + 10, "10 reconstructions after it")
    finally:
        fake.stop()
        status, err = client.stop()
    assert status == 0, err


def test_view_warns_when_the_daemon_shows_another_targets_file(tmp_path: Path) -> None:
    from argparse import Namespace

    from specklenet.clients.view import ViewServer
    from specklenet.clients.view_frames import Targets

    write_targets(tmp_path / "mine.h5")
    targets = Targets(tmp_path / "mine.h5")
    try:
        server = ViewServer(Namespace(stream="tcp://127.0.0.1:9"), targets)
        assert not server.stats()["targets_mismatch"]  # nothing heard yet
        server.status = {"state": "live", "running": {"targets": "mine.h5"}}
        assert not server.stats()["targets_mismatch"]
        server.status = {"state": "live", "running": {"targets": "other.h5"}}
        assert server.stats()["targets_mismatch"] and server.stats()["daemon_targets"] == "other.h5"
    finally:
        targets.close()


@pytest.mark.skipif(
    shutil.which("node") is None, reason="node not found: the page's script is checked by Chromium only"
)
def test_the_page_script_parses(tmp_path: Path) -> None:
    from specklenet.clients.view_page import PAGE_HTML

    script = PAGE_HTML.split("<script>")[1].split("</script>")[0]
    (tmp_path / "page.js").write_text(script)
    result = subprocess.run(
        ["node", "--check", str(tmp_path / "page.js")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
