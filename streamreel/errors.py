"""The one exception family streamreel raises, each saying what was expected and how to fix it."""

from __future__ import annotations

__all__ = ["StreamreelError", "CassetteError", "CassetteNameError", "FaultSpecError", "NoMatchError", "NonLoopbackWarning"]


class StreamreelError(Exception):
    """Base class of every error streamreel raises on purpose."""


class CassetteError(StreamreelError, ValueError):
    """A cassette file that cannot be read: names the file, the line and the field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.reason = message
        where = path or "<cassette>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


class CassetteNameError(CassetteError):
    """A cassette name (a marker's, ``reel.load``'s or a request's) that would leave its directory."""

    def __init__(self, name: str, directory: str, why: str) -> None:
        self.name = name
        self.directory = directory
        self.why = why
        self.path = self.line = self.field = None
        self.reason = f"cassette name {name!r} {why}"
        ValueError.__init__(
            self,
            f"{self.reason}; a cassette name is a relative path inside {directory}. "
            "To use a file elsewhere on purpose, pass a pathlib.Path instead of a string: a path object is taken as given",
        )


class FaultSpecError(StreamreelError, ValueError):
    """A fault spec string or fault argument that does not parse; lists the valid choices."""

    def __init__(self, message: str, *, spec: str | None = None) -> None:
        self.spec = spec
        self.reason = message
        super().__init__(f"bad fault spec {spec!r}: {message}" if spec is not None else message)


class NoMatchError(StreamreelError, LookupError):
    """A request that no recorded interaction matches; the message names the closest one."""

    def __init__(self, message: str, *, request: object = None) -> None:
        self.request = request
        super().__init__(message)


class NonLoopbackWarning(UserWarning):
    """A server bound to an address other machines can reach: they can read what it serves."""
