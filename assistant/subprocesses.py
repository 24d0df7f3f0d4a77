"""Long-lived helper processes of this package (file parsing, document embedding), started alike.

A helper is `python -m <module>` of this package, talking over its stdin and stdout as
`multiprocessing.connection` channels (length-prefixed messages, no pickle unless a side chooses
it), with the parent's PYTHONPATH plus this package's folder. It says "ready" once loaded, and
it ends when the parent closes the channel or, should the parent die, when its parent is gone.
Plain `subprocess` rather than `multiprocessing`, so a user's script without a `__main__` guard
is never imported again in the child.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

READY = b'"ready"'


@dataclass
class Child:
    """A started helper and its two channels."""

    process: subprocess.Popen
    send: Connection
    receive: Connection

    @classmethod
    def start(cls, module: str, *args: str, wait_s: float) -> Child:
        """Start `python -m module args…` and wait (at most `wait_s`) for it to say it is ready.

        Raises:
            OSError: it could not start, or did not get ready in time.
        """
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        child = cls(
            process,
            Connection(os.dup(process.stdin.fileno()), readable=False),
            Connection(os.dup(process.stdout.fileno()), writable=False),
        )
        process.stdin.close()
        process.stdout.close()
        try:
            ready = child.receive.poll(wait_s) and child.receive.recv_bytes() == READY
        except (EOFError, OSError):
            ready = False
        if not ready:
            child.stop()
            raise OSError(f"{module} did not start")
        return child

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """Close the channels and end the process (killed: it may be in the middle of a step)."""
        for conn in (self.send, self.receive):
            conn.close()
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def serve() -> tuple[Connection, Connection]:
    """In a helper: its channels to the parent (send, receive). Output a library prints goes to
    stderr, not into the channel, and the helper ends when its parent does."""
    send = Connection(os.dup(1), readable=False)
    receive = Connection(os.dup(0), writable=False)
    os.dup2(2, 1)
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    return send, receive


def _exit_with_parent(parent: int) -> None:
    """End the helper when the process that started it is gone, even in the middle of a long step."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)
