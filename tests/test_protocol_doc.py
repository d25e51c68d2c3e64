"""docs/protocol.md stays true: its minimal subscriber runs against a daemon, and it names every topic,
header field, command, argument and error code of specklenet.daemon.protocol."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from clients_helpers import DEADLINE_S
from conftest import REPO
from fake_daemon import FakeDaemon

from specklenet.daemon import protocol

DOC = REPO / "docs" / "protocol.md"
MARKER = "<!-- subscriber-example"


def subscriber_snippet(address: str) -> str:
    text = DOC.read_text()
    block = re.search(re.escape(MARKER) + r".*?-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert block, "the subscriber example block is missing"
    code = block.group(1)
    assert 'STREAM = "tcp://127.0.0.1:5556"' in code
    return code.replace('STREAM = "tcp://127.0.0.1:5556"', f"STREAM = {address!r}")


def run_snippet(address: str, lines: int) -> list[str]:
    """Run the documented subscriber until it printed ``lines`` lines; returns them."""
    process = subprocess.Popen(
        [sys.executable, "-c", subscriber_snippet(address)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        while len(seen) < lines:
            line = process.stdout.readline()
            if not line:
                break
            seen.append(line.strip())
        return seen
    finally:
        process.kill()
        _, err = process.communicate(timeout=DEADLINE_S)
        assert "Traceback" not in err, err


def test_the_documented_subscriber_reads_the_stream() -> None:
    with FakeDaemon(rate_hz=100, speckle=False) as fake:
        lines = run_snippet(fake.stream, 5)
    assert len(lines) == 5, lines
    for line in lines:
        assert re.fullmatch(
            r"seq \d+ frame \d+ target \d+ pcc [\d.]+ image \(64, 64\) mean [\d.]+ daemon latency [-\d.]+ ms",
            line,
        ), line


@pytest.mark.parametrize(
    "name",
    [
        *protocol.TOPICS,
        *protocol.COMMANDS,
        *protocol.ERROR_CODES,
        *protocol.DTYPES,
        *{field for fields in protocol.REQUIRED_FIELDS.values() for field in fields},
        *{arg for args in protocol.COMMANDS.values() for arg in args},
        "version",
        "seq",
        "t_publish_ns",
        "shape",
    ],
)
def test_the_document_names_every_part_of_the_protocol(name: str) -> None:
    assert f"`{name}`" in DOC.read_text() or f"**`{name}`**" in DOC.read_text()


def test_the_document_states_the_protocol_version() -> None:
    assert f"# specklenet wire protocol (version {protocol.PROTOCOL_VERSION})" in DOC.read_text()
