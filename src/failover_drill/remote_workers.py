"""What a platform provides for traffic workers it runs where the users are (platforms.kind.
traffic_jobs) and traffic.remote_pool drives: the one contract between the two, kept below both."""

from __future__ import annotations

from typing import Protocol


class RemoteWorkers(Protocol):
    def describe(self) -> str:
        """Where the workers are, for messages (e.g. a Job, its namespace and context)."""
        ...

    def launch(self) -> None: ...

    def running(self, timeout_s: float) -> list[str]:
        """The workers' ids, ordered by worker index, once every one runs."""
        ...

    def follow_argv(self, worker: str) -> list[str]:
        """A command whose stdout is the worker's output (NDJSON records)."""
        ...

    def start(self, worker: str, wall: float) -> None: ...

    def stop(self, worker: str) -> None: ...

    def cleanup(self) -> None: ...
