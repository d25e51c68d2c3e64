"""The daemon's exception hierarchy (the wire protocol's own error lives in :mod:`.protocol`,
which clients import alone).

Every error the daemon raises on purpose derives from :class:`SpecklenetError`, so the entry points can
turn it into a one-line message and an exit status while the service keeps running. Vendor SDK errors
are caught in their adapter module and re-raised as one of these, chained with ``from``.
"""


class SpecklenetError(Exception):
    """Base class of every error raised on purpose by specklenet."""


class ConfigError(SpecklenetError, ValueError):
    """A configuration file or object is invalid: unknown key, wrong type or value out of range.

    The message names the offending key by its dotted path (``twin.iris_mm``) and the source file.
    """


class FileFormatError(SpecklenetError):
    """A targets or pairs file is missing, truncated, or has the wrong layout, shape or dtype.

    The message names the file and the problem.
    """


class DeviceError(SpecklenetError):
    """A hardware device (or its simulation) failed; the message names the device and the call."""


class DeviceRemovedError(DeviceError):
    """The device disappeared (unplugged, powered off); it may come back and be reconnected."""


class ModelError(SpecklenetError):
    """A reconstruction model cannot be used: missing or corrupt file, no specklenet metadata, or metadata
    that does not fit the camera's frames or the DMD canvas. The message names the file and the mismatch."""
