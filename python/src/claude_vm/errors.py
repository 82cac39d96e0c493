"""Typed errors, built from claude-vm's `error` event (docs/events.md), never from its text."""

from typing import Any, Dict, List, Optional


class ClaudeVMError(Exception):
    """claude-vm failed: `message` and `hint` are its own, `exit_code` its exit status."""

    def __init__(
        self,
        message: str,
        hint: Optional[str] = None,
        exit_code: Optional[int] = None,
        events: Optional[List[Dict[str, Any]]] = None,
    ):
        super().__init__(message if hint is None else f"{message}\nhint: {hint}")
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
        self.events = list(events or [])

    @property
    def vm_deleted(self) -> Optional[bool]:
        """Whether the session's VM was deleted (None: no session was started or ended)."""
        for e in reversed(self.events):
            if e.get("type") == "session.ended":
                return bool(e.get("vm_deleted"))
        return None


class UsageError(ClaudeVMError):
    """Bad flags, configuration or paths (`kind: usage`, exit status 2)."""


class SessionError(ClaudeVMError):
    """The command or session failed (`kind: failure`, exit status 1)."""


class RuntimeScriptError(SessionError):
    """A runtime script failed in the VM (`runtime_script.failed`): the session stopped
    before claude or the command ran. `script` is its path, `status` its exit status."""

    def __init__(self, script: str, status: int, exit_code: int, events: List[Dict[str, Any]]):
        super().__init__(
            f"runtime script {script} exited with status {status}", None, exit_code, events
        )
        self.script = script
        self.status = status


class Timeout(ClaudeVMError, TimeoutError):
    """The timeout passed: claude-vm was stopped with SIGTERM and deleted its VM."""


class Cancelled(ClaudeVMError):
    """claude-vm ended by a signal without reporting an error (its VM may be left to the
    next claude-vm command, which reaps it)."""


def from_events(events: List[Dict[str, Any]], exit_code: int) -> Optional[ClaudeVMError]:
    """The error an ended claude-vm reported, if it reported one."""
    for e in reversed(events):
        if e.get("type") == "error":
            cls = UsageError if e.get("kind") == "usage" else SessionError
            return cls(
                str(e.get("message", "")),
                e.get("hint"),
                e.get("exit_code", exit_code),
                events,
            )
    for e in events:
        if e.get("type") == "runtime_script.failed":
            return RuntimeScriptError(
                str(e.get("script", "")), int(e.get("status", exit_code)), exit_code, events
            )
    return None
