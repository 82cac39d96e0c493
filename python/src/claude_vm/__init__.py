"""Run Claude Code in disposable Lima VMs from Python, through the claude-vm CLI.

    from claude_vm import Sandbox
    result = Sandbox("~/app").run("fix the tests", claude_args=["--output-format", "json"])
    print(result.message.text)
"""

from .errors import (
    Cancelled,
    ClaudeVMError,
    RuntimeScriptError,
    SessionError,
    Timeout,
    UsageError,
)
from .sandbox import Result, ResultMessage, Sandbox, Stream, StreamItem

__all__ = [
    "Cancelled",
    "ClaudeVMError",
    "Result",
    "ResultMessage",
    "RuntimeScriptError",
    "Sandbox",
    "SessionError",
    "Stream",
    "StreamItem",
    "Timeout",
    "UsageError",
]
