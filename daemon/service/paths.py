"""Paths named in control commands, confined to the service's data directory.

A client names files relative to ``[service] data_dir``. Refused (:class:`PathRefusedError`, reply code
``refused``): ``..`` components, absolute paths outside the folder, and paths that leave it through a
symbolic link (checked on the resolved path, so a link inside pointing outside is caught). A file that
must exist and does not raises :class:`PathMissingError` (code ``not_found``).

Symlinks created between the check and the use are not guarded against: the data directory belongs to
the service's user. Pure functions of the file system; thread-safe.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from specklenet.daemon.errors import SpecklenetError


class PathRefusedError(SpecklenetError):
    """A command's path lies outside the data directory (or is not a usable path at all)."""


class PathMissingError(SpecklenetError):
    """A command's input file does not exist."""


class DataDir:
    """The folder every command path must stay in.

    Args:
        root: the data directory; made absolute and resolved once (it may itself be a symlink).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()

    def resolve(self, name: str, *, must_exist: bool = False, what: str = "path") -> Path:
        """The absolute, resolved path of ``name`` inside the data directory.

        Args:
            name: relative to the data directory (or absolute, inside it).
            must_exist: raise :class:`PathMissingError` when there is no such file.
            what: the argument's name, for the error message (``"targets"``).
        """
        shown = name if len(name) <= 120 else name[:120] + "..."
        if not name or "\x00" in name:
            raise PathRefusedError(f"{what}: {shown!r} is not a file name")
        if ".." in PurePosixPath(name).parts:
            raise PathRefusedError(f"{what}: {shown!r} contains '..'; name files inside the data directory")
        try:
            path = (self.root / name).resolve()  # an absolute name replaces root; links are followed
            if not path.is_relative_to(self.root):
                raise PathRefusedError(f"{what}: {shown!r} lies outside the data directory {self.root}")
            if path == self.root:
                raise PathRefusedError(f"{what}: {shown!r} is the data directory itself, not a file in it")
            exists = path.is_file()
        except OSError as error:  # a name too long, a link loop, a folder we may not read
            raise PathRefusedError(f"{what}: {shown!r}: {error.strerror or error}") from None
        if must_exist and not exists:
            raise PathMissingError(f"{what}: {shown!r} not found in the data directory {self.root}")
        return path
