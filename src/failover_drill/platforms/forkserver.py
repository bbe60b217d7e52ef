"""Start many copies of one Python program by forking them from a process that imported it once.

A sandbox fleet starts 24 replicas on a two-core machine; each interpreter spent ~0.19 s of CPU
importing asyncio, uvicorn and the app before it could answer, ~2.3 s of wall time for the batch
that a drill waits through before it measures anything (issue 20). Forked from a warm parent,
a replica is serving within milliseconds of CPU.

The server lives for one batch: the caller writes one JSON line per process ({"args", "log"}),
reads back its pid, and closes stdin; the server then exits and its children, each in a session of
its own like spawn()'s, are adopted by init as any orphan is. They inherit the server's
environment as it was at exec, so they carry the fleet's mark in /proc/<pid>/environ, and its
command line, which names the module and the fleet (not which replica: `failover-drill status`
does).

Usage: python -m failover_drill.platforms.forkserver MODULE FLEET
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import traceback
from types import ModuleType


def _child(module: ModuleType, args: list[str], log: str) -> None:
    code = 1
    try:
        os.setsid()
        out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(out)
        os.close(null)
        # Signal dispositions stay as the server's interpreter set them, which are a fresh
        # interpreter's: SIGPIPE ignored above all (reset to default, a replica that wrote to a
        # connection Envoy had closed while it was frozen died of it).
        sys.argv = [module.__name__, *args]
        module.main(args)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def serve(module_name: str) -> int:
    module = importlib.import_module(module_name)
    preload = getattr(module, "preload", None)
    if callable(preload):
        preload()
    # Nothing may sit in a buffer a child would write out again.
    sys.stdout.flush()
    sys.stderr.flush()
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(module, [str(a) for a in req["args"]], str(req["log"]))
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(serve(sys.argv[1]))
