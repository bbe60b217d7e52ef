"""A program for the fork server's tests (tests/test_forkserver.py): says who it is, then waits."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path


def preload() -> None:
    if os.environ.get("FORKABLE_BREAK"):
        raise RuntimeError("preload broke")


def _write_to_a_closed_socket() -> str:
    """What a replica meets when a peer hung up while it was frozen: EPIPE, not death by SIGPIPE."""
    a, b = socket.socketpair()
    b.close()
    try:
        for _ in range(4):
            a.send(b"x" * 65536)
    except OSError as e:
        return type(e).__name__
    finally:
        a.close()
    return "sent"


def main(args: list[str]) -> None:
    me = {"pid": os.getpid(), "sid": os.getsid(0), "argv": sys.argv[1:], "closed_peer": _write_to_a_closed_socket()}
    Path(args[0]).write_text(json.dumps(me))
    print("started", flush=True)
    time.sleep(float(args[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
