"""PairsWriter.resume tells apart a file locked by a live writer, held by a reader and left by a
crash: it names the holder in the first two cases and leaves the file alone; it copies only after a
crash."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records import PairsWriter, Targets, read_pairs

FRAME = (256, 256)


def frame_for(index: int) -> np.ndarray:
    return np.full(FRAME, 100.0 + index, np.float32)


def make_file(path: Path, count: int = 4, recorded: int = 2) -> None:
    targets = Targets.from_canvases(np.zeros((count, 128, 128), np.uint8))
    with PairsWriter.create(path, targets, source="twin", acquisition={}) as writer:
        for index in range(recorded):
            writer.write(index, frame_for(index), frame_id=index, timestamp_ns=index)


@contextmanager
def process(code: str) -> Iterator[subprocess.Popen[str]]:
    """Run ``code`` in another Python process until the block ends; it prints "ready" when it holds
    what it should hold, then waits for its stdin to close."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        yield child
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)
        child.stdout.close()  # type: ignore[union-attr]


READER = """
    import sys
    from specklenet.daemon.records import read_pairs
    pairs = read_pairs({path!r})
    print("ready", flush=True)
    sys.stdin.read()
"""
WRITER = """
    import sys
    from specklenet.daemon.records import PairsWriter
    writer = PairsWriter.resume({path!r})
    print("ready", flush=True)
    sys.stdin.read()
    writer.close()
"""
CRASH = """
    import os, numpy as np
    from specklenet.daemon.records import PairsWriter
    writer = PairsWriter.resume({path!r})
    writer.write(2, np.full((256, 256), 102.0, np.float32), frame_id=2, timestamp_ns=2)
    os.kill(os.getpid(), 9)
"""


def crash(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH.format(path=str(path)))], check=False
    )
    assert result.returncode == -9


def test_a_file_held_by_a_reader_is_not_copied_and_the_reader_is_named(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    make_file(path)
    inode = path.stat().st_ino
    with process(READER.format(path=str(path))) as reader:
        with pytest.raises(
            FileFormatError, match=rf"p\.h5: held by a reader \(pid {reader.pid} \(.*read lock"
        ):
            PairsWriter.resume(path)
        assert path.stat().st_ino == inode  # no copy, no inode swap under the reader
        assert not (tmp_path / "p.h5.partial").exists()
    with PairsWriter.resume(path) as writer:  # the reader is gone: resuming works, still no copy
        np.testing.assert_array_equal(writer.missing(), [2, 3])
    assert path.stat().st_ino == inode


def test_a_crashed_file_held_by_a_reader_waits_for_the_reader(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    make_file(path)
    crash(path)
    inode = path.stat().st_ino
    with process(READER.format(path=str(path))) as reader:
        with pytest.raises(FileFormatError, match=rf"held by a reader \(pid {reader.pid} "):
            PairsWriter.resume(path)
        assert path.stat().st_ino == inode
    with PairsWriter.resume(path) as writer:  # now it is a crash left alone: recovered by a copy
        np.testing.assert_array_equal(writer.missing(), [3])
    assert path.stat().st_ino != inode


def test_a_file_locked_by_a_live_writer_names_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    make_file(path)
    inode = path.stat().st_ino
    with process(WRITER.format(path=str(path))) as writer:
        with pytest.raises(
            FileFormatError, match=rf"locked by a live writer.*pid {writer.pid} \(.*write lock"
        ):
            PairsWriter.resume(path)
        with read_pairs(path) as pairs:  # readers are still welcome
            assert pairs.complete.sum() == 2
    assert path.stat().st_ino == inode


def test_a_file_open_in_a_foreign_writer_is_not_copied(tmp_path: Path) -> None:
    path = tmp_path / "p.h5"
    make_file(path)
    inode = path.stat().st_ino
    code = """
        import sys, h5py
        file = h5py.File({path!r}, "r+", libver="latest")
        file.swmr_mode = True
        print("ready", flush=True)
        sys.stdin.read()
        file.close()
    """
    with process(code.format(path=str(path))) as foreign:
        message = rf"not a specklenet writer \(pid {foreign.pid} "
        with pytest.raises(FileFormatError, match=message):
            PairsWriter.resume(path)
    assert path.stat().st_ino == inode


def test_a_file_left_by_a_crash_is_recovered_by_a_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "p.h5"
    make_file(path)
    crash(path)
    inode = path.stat().st_ino
    with caplog.at_level(logging.WARNING), PairsWriter.resume(path) as writer:
        kept = 4 - len(writer.missing())
        assert kept in (2, 3)  # frame 2 was committed before the kill, unless the kill came first
    assert path.stat().st_ino != inode
    assert f"recovered after a crash; kept {kept} complete frames" in caplog.text
    with read_pairs(path) as pairs:
        assert pairs.load_frames([0, 1]).tobytes() == np.stack([frame_for(0), frame_for(1)]).tobytes()
