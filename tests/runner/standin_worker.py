"""A worker stand-in without torch: ``python -m tests.runner.standin_worker MODE OUT_DIR [ARG]``.

It behaves like a hostile model would inside a real worker, cheaply, so the launcher's guarantees can be
tested in seconds. Modes:

- ``env``: writes its environment (``os.environ`` and ``/proc/self/environ``) into the result.
- ``fork``: forks a child that ignores SIGTERM and sleeps; its pid goes to ``OUT_DIR/child.pid``; then
  ends normally (``ARG`` = ``hang``: hangs instead, for the timeout).
- ``setsid``: double-forks a grandchild that calls ``setsid()`` and ignores SIGTERM (pid in
  ``child.pid``); then ends normally or hangs, as ``fork``.
- ``alloc``: allocates ``ARG`` bytes of host memory, then ends normally.
- ``stdout``/``stderr``: writes ``ARG`` bytes without a newline to that stream, then writes one event
  (stdout) and ends normally.
- ``events``: writes valid progress events as fast as it can, forever.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def _sleep_forever() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(60)


def _fork_stubborn(out: Path, escape: bool) -> None:
    pid = os.fork()
    if pid == 0:
        try:
            if escape:
                os.setsid()
                if os.fork() != 0:
                    os._exit(0)
            (out / "child.pid.tmp").write_text(str(os.getpid()))
            (out / "child.pid.tmp").rename(out / "child.pid")
            _sleep_forever()
        finally:
            os._exit(0)
    if escape:
        os.waitpid(pid, 0)
    while not (out / "child.pid").exists():
        time.sleep(0.01)


def _flood(fd: int, size: int) -> None:
    chunk = b"x" * (1 << 20)
    left = size
    while left > 0:
        left -= os.write(fd, chunk[: min(left, len(chunk))])


def main() -> int:
    mode, out = sys.argv[1], Path(sys.argv[2])
    arg = sys.argv[3] if len(sys.argv) > 3 else ""
    payload: dict[str, object] = {"results": []}
    if mode == "env":
        raw = Path("/proc/self/environ").read_bytes()
        payload["environ"] = dict(os.environ)
        payload["proc_environ"] = raw.decode("utf-8", "replace")
    elif mode in ("fork", "setsid"):
        _fork_stubborn(out, escape=mode == "setsid")
        if arg == "hang":  # the worker itself dies on SIGTERM; only its child ignores it
            while True:
                time.sleep(60)
    elif mode == "alloc":
        block = bytearray(int(arg))
        payload["allocated"] = len(block)
    elif mode == "stdout":
        _flood(1, int(arg))
        os.write(1, b"\n" + json.dumps({"event": "after_flood"}).encode() + b"\n")
    elif mode == "events":
        line = json.dumps({"event": "progress", "message": "spam"}).encode() + b"\n"
        while True:
            os.write(1, line * 100)
    elif mode == "stderr":
        _flood(2, int(arg))
        os.write(2, b"\nthe end of stderr\n")
    else:
        raise SystemExit(f"unknown mode {mode}")
    (out / "result.json").write_text(json.dumps(payload))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
