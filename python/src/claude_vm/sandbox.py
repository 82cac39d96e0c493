"""The Sandbox: claude-vm's sessions, commands, setup and list, driven through `--json`."""

import json
import os
import queue
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

from ._process import Process
from .errors import Cancelled, ClaudeVMError, Timeout, UsageError, from_events

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOOL = re.compile(r"[a-z][a-z0-9-]*\Z")


@dataclass
class ResultMessage:
    """Claude's `result` message (`--output-format json`, or the last one of a stream)."""

    text: Optional[str]
    cost_usd: Optional[float]
    num_turns: Optional[int]
    session_id: Optional[str]
    is_error: bool
    subtype: Optional[str]
    raw: Dict[str, Any]

    @classmethod
    def parse(cls, m: Dict[str, Any]) -> "ResultMessage":
        return cls(
            text=m.get("result"),
            cost_usd=m.get("total_cost_usd"),
            num_turns=m.get("num_turns"),
            session_id=m.get("session_id"),
            is_error=bool(m.get("is_error", False)),
            subtype=m.get("subtype"),
            raw=m,
        )


@dataclass
class Result:
    """How a session or command ended."""

    exit_status: int
    stdout_bytes: bytes
    events: List[Dict[str, Any]]
    message: Optional[ResultMessage] = None
    #: stderr lines that were not events (none, when claude-vm keeps its schema).
    stray_stderr: List[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def stdout(self) -> str:
        return self.stdout_bytes.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        """What the VM (claude or the command) wrote on stderr."""
        return "".join(e["line"] + "\n" for e in self.events if e.get("type") == "guest.stderr")

    def _last(self, kind: str) -> Optional[Dict[str, Any]]:
        return next((e for e in reversed(self.events) if e.get("type") == kind), None)

    @property
    def vm(self) -> Optional[str]:
        started = self._last("session.started")
        return None if started is None else started.get("vm")

    @property
    def vm_deleted(self) -> Optional[bool]:
        ended = self._last("session.ended")
        return None if ended is None else bool(ended.get("vm_deleted"))


@dataclass
class StreamItem:
    """One thing a stream yields: `source` is `claude` (a stream-json message from claude's
    stdout), `event` (one of claude-vm's events), or `stdout`/`stderr` for a line that was
    not JSON (`data["line"]`)."""

    source: str
    data: Dict[str, Any]

    @property
    def type(self) -> Optional[str]:
        return self.data.get("type")


def _output_format(args: Sequence[str]) -> Optional[str]:
    for i, a in enumerate(args):
        if a == "--output-format" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--output-format="):
            return a.split("=", 1)[1]
    return None


class Stream:
    """Iterate for the items as they come; `result` is set once the stream is exhausted.
    Leaving early (break, an exception, `close()`, the `with` block) stops claude-vm, which
    deletes its VM."""

    def __init__(self, process: Process, deadline: Optional[float], timeout: Optional[float]):
        self._p = process
        self._deadline = deadline
        self._timeout = timeout
        self.result: Optional[Result] = None
        self._iter = self._run()

    def __iter__(self) -> Iterator[StreamItem]:
        return self._iter

    def __next__(self) -> StreamItem:
        return next(self._iter)

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._iter.close()
        self._p.stop()

    def _run(self) -> Iterator[StreamItem]:
        p = self._p
        ended = 0
        last = None
        try:
            while ended < 2:
                left = None if self._deadline is None else self._deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise _timeout(p, self._timeout)
                try:
                    item = p.items.get(timeout=left)
                except queue.Empty:
                    continue
                if item is None:
                    ended += 1
                    continue
                source, data = item
                if source == "claude" and data.get("type") == "result":
                    last = data
                yield StreamItem(source, data)
            status = p.wait(self._deadline)
            if status is None:
                raise _timeout(p, self._timeout)
        except BaseException:
            p.stop()
            raise
        p.finish()
        self.result = _result(p, status, None if last is None else ResultMessage.parse(last))


def _timeout(p: Process, timeout: Optional[float]) -> Timeout:
    status = p.stop()
    return Timeout(
        f"claude-vm did not finish within {timeout} seconds and was stopped",
        None,
        status,
        p.events,
    )


def _result(p: Process, status: int, message: Optional[ResultMessage]) -> Result:
    err = from_events(p.events, status)
    if err is not None:
        raise err
    ended = any(e.get("type") == "session.ended" for e in p.events)
    if status != 0 and not ended:
        cls = Cancelled if status < 0 or status > 128 else ClaudeVMError
        cls = UsageError if status == 2 else cls
        raise cls(f"claude-vm exited with status {status} without reporting an error", None,
                  status, p.events)
    return Result(status, p.stdout, list(p.events), message, list(p.stray_stderr))


class Sandbox:
    """claude-vm sessions for one project.

    `env`: variables set in every session's VM (with each call's own `env` on top). They reach
    claude-vm in its process environment and are named with `--inherit-env`, so no value is
    ever on a command line. `process_env`: the environment claude-vm itself runs in (default:
    this process's). `flags`: claude-vm's own session flags for every session and command
    (`["--memory", "8", "--mount", "~/data:ro"]`). `grace`: seconds a stopped claude-vm gets
    to delete its VM before SIGKILL.
    """

    def __init__(
        self,
        project: "os.PathLike[str] | str" = ".",
        claude_vm: str = "claude-vm",
        env: Optional[Mapping[str, str]] = None,
        process_env: Optional[Mapping[str, str]] = None,
        flags: Sequence[str] = (),
        grace: float = 120.0,
    ):
        if isinstance(flags, str):
            raise TypeError("flags is a sequence of arguments, not one string")
        self.flags = list(flags)
        self.project = os.path.abspath(os.path.expanduser(os.fspath(project)))
        self.claude_vm = claude_vm
        self.env = dict(env or {})
        self.process_env = dict(os.environ if process_env is None else process_env)
        self.grace = grace

    # -- building a call ------------------------------------------------------------------

    def _session_env(self, env: Optional[Mapping[str, str]]) -> Dict[str, str]:
        merged = dict(self.env)
        merged.update(env or {})
        for name, value in merged.items():
            if not _NAME.match(name):
                raise ValueError(f"environment variable name {name!r}: use [A-Za-z_][A-Za-z0-9_]*")
            if not isinstance(value, str) or "\0" in value:
                raise ValueError(f"environment variable {name}: the value must be a str without NUL")
        return merged

    def _start(
        self,
        args: Sequence[str],
        env: Optional[Mapping[str, str]],
        stream: bool,
        session: bool = True,
    ) -> Process:
        session_env = self._session_env(env) if session else {}
        argv = [self.claude_vm, "--json"]
        if session:
            argv += self.flags
        for name in session_env:
            argv += ["--inherit-env", name]
        argv += list(args)
        child_env = dict(self.process_env)
        child_env.update(session_env)
        return Process(argv, self.project, child_env, stream, self.grace)

    def _call(
        self,
        args: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
        json_stdout: bool = False,
        session: bool = True,
    ) -> Result:
        deadline = None if timeout is None else time.monotonic() + timeout
        p = self._start(args, env, stream=False, session=session)
        try:
            status = p.wait(deadline)
            if status is None:
                raise _timeout(p, timeout)
        except BaseException:
            p.stop()
            raise
        p.finish()
        message = None
        if json_stdout:
            try:
                doc = json.loads(p.stdout)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and doc.get("type") == "result":
                message = ResultMessage.parse(doc)
        return _result(p, status, message)

    @staticmethod
    def _claude_args(
        prompt: str, claude_args: Sequence[str], continue_conversation: bool
    ) -> List[str]:
        if isinstance(claude_args, str):
            raise TypeError("claude_args is a sequence of arguments, not one string")
        if not isinstance(prompt, str) or not prompt or prompt.startswith("-"):
            # claude would take it for a flag (or find no prompt).
            raise ValueError(f"prompt {prompt!r}: a non-empty str not starting with '-'")
        args = ["-p", prompt, *claude_args]
        if continue_conversation:
            args.append("--continue")
        return args

    # -- the API --------------------------------------------------------------------------

    def run(
        self,
        prompt: str,
        claude_args: Sequence[str] = (),
        continue_conversation: bool = False,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Result:
        """`claude -p PROMPT` in a fresh VM. With `--output-format json` in `claude_args`,
        `Result.message` is claude's parsed result."""
        args = self._claude_args(prompt, claude_args, continue_conversation)
        return self._call(args, env, timeout, json_stdout=_output_format(args) == "json")

    def stream(
        self,
        prompt: str,
        claude_args: Sequence[str] = (),
        continue_conversation: bool = False,
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Stream:
        """`claude -p PROMPT --output-format stream-json --verbose`: claude's messages and
        claude-vm's events, as they come."""
        args = self._claude_args(prompt, claude_args, continue_conversation)
        if _output_format(args) is None:
            args += ["--output-format", "stream-json"]
        if "--verbose" not in args:
            args.append("--verbose")
        deadline = None if timeout is None else time.monotonic() + timeout
        return Stream(self._start(args, env, stream=True), deadline, timeout)

    def exec(
        self,
        argv: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> Result:
        """Runs a command in a fresh VM (`claude-vm shell -- ARGV`): its exit status and stdout;
        its stderr is `Result.stderr`."""
        if isinstance(argv, str) or not argv:
            raise TypeError("argv is a non-empty sequence of arguments, not one string")
        return self._call(["shell", "--", *argv], env, timeout)

    def setup(
        self,
        tools: Sequence[str] = (),
        args: Sequence[str] = (),
        timeout: Optional[float] = None,
    ) -> Result:
        """Builds the project's template (`claude-vm setup --TOOL ... ARGS`)."""
        if isinstance(tools, str):
            tools = [tools]
        flags = []
        for tool in tools:
            if not _TOOL.match(tool):
                raise ValueError(f"tool {tool!r}: a name such as 'node' or 'python'")
            flags.append(f"--{tool}")
        return self._call(["setup", *flags, *args], None, timeout, session=False)

    def list(self, timeout: Optional[float] = None) -> Any:
        """claude-vm's templates, sessions and VMs: the document `claude-vm list --json` prints."""
        result = self._call(["list"], None, timeout, session=False)
        try:
            return json.loads(result.stdout_bytes)
        except ValueError as e:
            raise ClaudeVMError(f"claude-vm list --json printed no JSON document: {e}", None,
                                result.exit_status, result.events) from None
