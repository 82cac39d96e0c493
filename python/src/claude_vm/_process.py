"""One claude-vm process: its stderr read as events, its stdout kept or streamed, and a way
to stop it that lets it delete its VM (SIGTERM, wait, SIGKILL only as a last resort)."""

import json
import queue
import signal
import subprocess
import threading
import time
from typing import IO, Any, Dict, List, Mapping, Optional, Sequence

# Items put on the queue: (source, data); None marks the end of one stream.
Item = Any


class Process:
    def __init__(
        self,
        argv: Sequence[str],
        cwd: str,
        env: Mapping[str, str],
        stream_stdout: bool,
        grace: float,
    ):
        self.grace = grace
        self.events: List[Dict[str, Any]] = []
        self.stray_stderr: List[str] = []
        self.stdout_chunks: List[bytes] = []
        self.items: "queue.Queue[Item]" = queue.Queue()
        # Its own session: a terminal's Ctrl-C reaches us, and we send claude-vm exactly one
        # SIGTERM (a second signal during its cleanup would make it stop waiting).
        self.proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        out = self._stdout_lines if stream_stdout else self._stdout_bytes
        self.readers = [
            threading.Thread(target=self._stderr, args=(self.proc.stderr,), daemon=True),
            threading.Thread(target=out, args=(self.proc.stdout,), daemon=True),
        ]
        for t in self.readers:
            t.start()

    def _stderr(self, pipe: IO[bytes]) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict) and "type" in event:
                self.events.append(event)
                self.items.put(("event", event))
            elif line:
                self.stray_stderr.append(line)
                self.items.put(("stderr", {"line": line}))
        self.items.put(None)

    def _stdout_bytes(self, pipe: IO[bytes]) -> None:
        while True:
            chunk = pipe.read1(65536) if hasattr(pipe, "read1") else pipe.read(65536)
            if not chunk:
                break
            self.stdout_chunks.append(chunk)
        self.items.put(None)

    def _stdout_lines(self, pipe: IO[bytes]) -> None:
        for raw in pipe:
            self.stdout_chunks.append(raw)
            line = raw.decode("utf-8", "replace").rstrip("\n")
            try:
                message = json.loads(line)
            except ValueError:
                message = None
            if isinstance(message, dict):
                self.items.put(("claude", message))
            elif line:
                self.items.put(("stdout", {"line": line}))
        self.items.put(None)

    @property
    def stdout(self) -> bytes:
        return b"".join(self.stdout_chunks)

    def wait(self, deadline: Optional[float]) -> Optional[int]:
        """The exit status, or None when the deadline passed first."""
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                return self.proc.wait(timeout=left)
            except subprocess.TimeoutExpired:
                continue

    def finish(self) -> None:
        """Waits for the readers: the pipes end when claude-vm and what it started close them
        (a few seconds at most once claude-vm has exited: what is still writing is not it)."""
        for t in self.readers:
            t.join(timeout=5.0)

    def stop(self) -> int:
        """SIGTERM (claude-vm deletes its VM and exits), then SIGKILL after the grace time."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.finish()
        return self.proc.returncode
