"""Who holds a pairs file, the writers' lock, and re-opening a file for writing after a crash.

HDF5 refuses to re-open a pairs file for writing for three different reasons, told apart here:

* **locked by a live writer**: another :class:`~.pairs.PairsWriter` holds ``<name>.lock`` (an
  exclusive ``flock``); the error names its process.
* **held by a reader**: some process has the file open. HDF5 readers hold a shared ``flock`` on it
  (HDF5 then reports ``errno 11``); a writer that is not a PairsWriter holds none, but has it open.
  The error names the processes; nothing is copied (a copy would swap the inode under the reader).
* **left by a crash**: HDF5's "open for write" flag is still set and no process has the file open:
  the complete frames are copied into a fresh file that atomically replaces the old one.

Holders are found in ``/proc/locks`` (all users) and ``/proc/<pid>/fd`` (processes this user may
inspect), so on Linux; elsewhere the reasons are still told apart, without the process names.

Thread-safety: functions are safe from any thread; a :class:`WriterLock` belongs to one writer.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import h5py

from specklenet.daemon.errors import FileFormatError
from specklenet.daemon.records.frames import create_frame_datasets
from specklenet.daemon.records.layout import fsync_directory, partial_path
from specklenet.daemon.records.reader import read_pairs
from specklenet.daemon.records.targets import write_targets_group

_logger = logging.getLogger(__name__)
_PROC = Path("/proc")


@dataclass(frozen=True)
class Holder:
    """A process that has a file open or locked. ``lock``: "read", "write" or "" (open, no flock)."""

    pid: int
    command: str
    lock: str

    def __str__(self) -> str:
        me = ", this process" if self.pid == os.getpid() else ""
        lock = f", {self.lock} lock" if self.lock else ""
        return f"pid {self.pid} ({self.command or '?'}{lock}{me})"


def holders(path: Path) -> list[Holder]:
    """Processes that lock or have open ``path`` (the same inode), as far as /proc shows them."""
    try:
        info = os.stat(path)
    except OSError:
        return []
    locks = _flock_holders(info.st_dev, info.st_ino)
    pids = set(locks) | _open_by(info.st_dev, info.st_ino)
    return [Holder(pid, _command(pid), locks.get(pid, "")) for pid in sorted(pids)]


class WriterLock:
    """An exclusive advisory lock on ``<path>.lock`` held while a writer has the file open."""

    def __init__(self, fd: int | None) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, path: Path) -> WriterLock:
        lock_path = path.with_name(path.name + ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise FileFormatError(f"{path}: cannot create the lock file {lock_path}: {error}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            who = ", ".join(str(h) for h in holders(lock_path) if h.lock == "write") or "a process"
            raise FileFormatError(
                f"{path}: locked by a live writer, another process is writing this file: {who}; "
                "wait for it to finish or stop it"
            ) from None
        return cls(fd)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def open_for_writing(path: Path) -> h5py.File:
    """Open a pairs file for writing (the caller holds its :class:`WriterLock`); after a crash, first
    rebuild it from its complete frames. A file held by another process raises FileFormatError."""
    try:
        return h5py.File(path, "r+", libver="latest")
    except OSError as error:
        _diagnose(path, error)  # returns only for a crash
    recover(path)
    try:
        return h5py.File(path, "r+", libver="latest")
    except OSError as error:
        raise FileFormatError(f"{path}: cannot resume after recovering it: {error}") from error


def recover(path: Path) -> None:
    """Rebuild a crashed pairs file from its complete frames, then atomically replace it."""
    partial = partial_path(path)
    partial.unlink(missing_ok=True)  # left by an earlier crash during recovery; ours (we hold the lock)
    with read_pairs(path) as old, h5py.File(partial, "w", libver="latest") as new:
        write_targets_group(new, old.targets, str(old.file.attrs["format"]))
        for name, value in old.file.attrs.items():
            if name not in new.attrs:  # source, acquisition, created_utc, the frame attributes
                new.attrs[name] = value
        new.attrs["format_version"] = old.version
        create_frame_datasets(new, len(old), old.frame_shape, old.codec)
        kept = old.complete_indices()
        frames = old.frames.dataset
        for index in kept:  # raw chunk copies: one frame per chunk, uncompressed, same dtype
            _, chunk = frames.id.read_direct_chunk((int(index), 0, 0))
            new["frames"].id.write_direct_chunk((int(index), 0, 0), chunk)
        for name in ("frame_id", "timestamp_ns", "camera_timestamp_ns"):
            if name in new:
                new[name][kept] = getattr(old, name)[kept]
        new["complete"][kept] = 1
        new.flush()
        os.fsync(new.id.get_vfd_handle())
    os.replace(partial, path)
    fsync_directory(path.parent)
    _logger.warning("%s: recovered after a crash; kept %d complete frames", path, len(kept))


def _diagnose(path: Path, error: OSError) -> None:
    """Raise FileFormatError unless ``error`` means the file was left by a crash."""
    found = [h for h in holders(path) if h.pid != os.getpid() or h.lock]
    who = ", ".join(str(h) for h in found)
    if isinstance(error, BlockingIOError) or error.errno == errno.EAGAIN or any(h.lock for h in found):
        raise FileFormatError(
            f"{path}: held by a reader ({who or 'a process this user cannot see'}); close it, then "
            "resume (nothing was changed)"
        ) from error
    if "already open for write" not in str(error):
        raise FileFormatError(f"{path}: cannot resume: {error}") from error
    if found:
        raise FileFormatError(
            f"{path}: open in a process that is not a specklenet writer ({who}), perhaps still writing "
            "it; close it, then resume (nothing was changed)"
        ) from error
    _logger.info("%s: its writer is gone without closing it (a crash): recovering", path)


def _flock_holders(device: int, inode: int) -> dict[int, str]:
    """pid -> "read"/"write" for the flock and POSIX locks on (device, inode), from /proc/locks."""
    wanted = f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"
    found: dict[int, str] = {}
    try:
        lines = (_PROC / "locks").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":  # "->": a process waiting for the lock, not holding it
            continue
        mode, pid, ident = fields[3], fields[4], fields[5]
        if ident == wanted and pid.isdigit():
            found[int(pid)] = "write" if mode == "WRITE" else "read"
    return found


def _open_by(device: int, inode: int) -> set[int]:
    """pids whose open descriptors point to (device, inode), among the processes we may inspect."""
    found = set()
    for entry in _PROC.iterdir() if _PROC.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                info = fd.stat()
                if info.st_ino == inode and info.st_dev == device:
                    found.add(int(entry.name))
                    break
        except OSError:  # gone, or another user's
            continue
    return found


def _command(pid: int) -> str:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    command = " ".join(raw.decode(errors="replace").split())  # arguments and line breaks: one line
    return command if len(command) <= 80 else command[:77] + "..."
