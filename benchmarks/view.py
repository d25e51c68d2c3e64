"""Browser refresh rate of ``specklenet view``: page refreshes per second against the stream's rate.

A fake daemon (tests/fake_daemon.py: 64×64 recon + 256×256 speckle per frame) publishes at each rate;
``specklenet view`` serves it; headless Chromium (software rendering, as on a lab PC without a GPU
compositor) loads the page and counts the reconstructions it draws during ``--seconds``. Printed side
by side: stream rate, page refreshes/s, their ratio, and the frames the view's sender skipped for the
tab (newest-only: a tab slower than the stream skips, it never queues). The issue asks for at least
20 refreshes/s when frames come that fast.

Usage: python benchmarks/view.py [--rates 20,30,60,95,150] [--seconds 5]. Needs Chromium.
On a shared, loaded machine the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chromium import Chromium, find
from fake_daemon import FakeDaemon


async def measure(url: str, seconds: float, profile: Path) -> float:
    async with Chromium(find(), profile) as browser:
        await browser.call("Page.navigate", url=url)
        while not await browser.evaluate("(window.specklenet || {refreshes: 0}).refreshes > 10"):
            await asyncio.sleep(0.1)
        start = await browser.evaluate("[window.specklenet.refreshes, performance.now()]")
        await asyncio.sleep(seconds)
        end = await browser.evaluate("[window.specklenet.refreshes, performance.now()]")
    return (end[0] - start[0]) / ((end[1] - start[1]) / 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="20,30,60,95,150")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if find() is None:
        sys.exit("no Chromium found (apt-get install chromium)")
    print(f"{'stream /s':>10} {'page /s':>9} {'ratio':>6} {'skipped':>8}")
    for rate in (float(r) for r in args.rates.split(",")):
        with FakeDaemon(rate_hz=rate) as fake, tempfile.TemporaryDirectory() as folder:
            view = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "specklenet.clients.cli",
                    "view",
                    "--port",
                    "0",
                    "--stream",
                    fake.stream,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                url = view.stdout.readline().strip()
                page_rate = asyncio.run(measure(url, args.seconds, Path(folder) / "profile"))
                state = json.load(urllib.request.urlopen(url + "state"))
            finally:
                view.terminate()
                view.wait()
        skipped = sum(tab["skipped"] for tab in state["tabs"])
        print(f"{rate:10.0f} {page_rate:9.1f} {page_rate / rate:6.2f} {skipped:8d}", flush=True)


if __name__ == "__main__":
    main()
