"""What a platform provides for traffic workers it runs where the users are (platforms.kind.
traffic_jobs) and traffic.remote_pool drives: the one contract between the two, kept below both."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class WorkerOutput(Protocol):
    """One worker's output as it is written: its lines (NDJSON records, maybe among other
    notices), ending when the worker's output does; a broken stream raises. close() ends it early
    from any thread."""

    def __iter__(self) -> Iterator[str]: ...

    def close(self) -> None: ...


class RemoteWorkers(Protocol):
    def describe(self) -> str:
        """Where the workers are, for messages (e.g. a Job, its namespace and context)."""
        ...

    def launch(self) -> None: ...

    def running(self, timeout_s: float) -> list[str]:
        """The workers' ids, ordered by worker index, once every one runs."""
        ...

    def follow(self, worker: str) -> WorkerOutput:
        """The worker's output (e.g. its pod's log, streamed by the API server)."""
        ...

    def start(self, worker: str, wall: float) -> None: ...

    def stop(self, worker: str) -> None: ...

    def cleanup(self) -> None: ...
