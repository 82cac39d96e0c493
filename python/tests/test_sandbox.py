"""The package against the Lima simulator: each test in a fresh world (conftest.py)."""

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from claude_vm import ClaudeVMError, RuntimeScriptError, SessionError, Timeout, UsageError


def claude_report(result):
    """The JSON line the simulator's fake claude prints about how it was run."""
    lines = [l for l in result.stdout.splitlines() if '"fake":"claude"' in l]
    assert len(lines) == 1, result.stdout
    return json.loads(lines[0])


def types(events):
    return [e["type"] for e in events]


def test_setup_builds_the_template_and_list_shows_it(world):
    assert world.instances() == []
    result = world.sandbox().setup()
    assert result.ok
    assert "step.finished" in types(result.events)
    # The project's template and the shared base it was cloned from.
    bases = [n for n in world.instances() if n.startswith("claude-vm_base-")]
    templates = [n for n in world.instances() if "." not in n and n not in bases]
    assert len(templates) == 1 and templates[0].startswith("claude-vm-app-")
    assert len(bases) == 1
    doc = world.sandbox().list()
    assert [t["name"] for t in doc["templates"]] == templates
    assert [b["name"] for b in doc["bases"]] == bases
    assert doc["bases"][0]["used_by"] != []
    assert doc["templates"][0]["project"] == str(world.project)
    assert doc["sessions"] == []


def test_setup_passes_tools_and_rejects_unknown_ones_with_the_hint(world):
    assert world.sandbox().setup(tools=["node"]).ok
    with pytest.raises(UsageError) as e:
        world.sandbox().setup(tools=["nosuchtool"])
    assert e.value.exit_code == 2
    assert "nosuchtool" in e.value.message
    assert e.value.events[-1]["type"] == "error"
    with pytest.raises(ValueError):
        world.sandbox().setup(tools=["--fresh; rm"])


def test_usage_error_carries_message_and_hint(world):
    # claude-vm's own `error` event, not its text: the exception holds the event's fields.
    with pytest.raises(UsageError) as e:
        world.sandbox().setup(args=["--memory", "999"])
    err = [ev for ev in e.value.events if ev["type"] == "error"][-1]
    assert e.value.message == err["message"] and e.value.message
    assert e.value.hint == err["hint"] and "--help" in e.value.hint
    assert "999" in e.value.message
    assert e.value.exit_code == 2 == err["exit_code"]


def test_error_with_hint(world):
    # A session before any setup: claude-vm says so and hints at `claude-vm setup`.
    with pytest.raises(ClaudeVMError) as e:
        world.sandbox().run("hello")
    assert e.value.hint, e.value.events
    assert "setup" in e.value.hint
    world.assert_nothing_left()


def test_run_plain(ready):
    result = ready.sandbox().run("hello there", claude_args=["--model", "m1"])
    assert result.exit_status == 0 and result.ok
    argv = claude_report(result)["argv"]
    assert argv[argv.index("-p") + 1] == "hello there"
    assert argv[argv.index("--model") + 1] == "m1"
    assert "--continue" not in argv
    assert result.message is None
    assert result.vm and ".run-" in result.vm
    assert result.vm_deleted is True
    assert types(result.events)[-1] == "session.ended"
    assert result.stray_stderr == []
    ready.assert_nothing_left()


def test_a_prompt_claude_would_take_for_a_flag_is_refused_before_anything_runs(world):
    for prompt in ["-x", "--help", ""]:
        with pytest.raises(ValueError):
            world.sandbox().run(prompt)
        with pytest.raises(ValueError):
            world.sandbox().stream(prompt)
    assert not world.log.exists()  # no limactl call was made


def test_run_reports_claudes_exit_status(ready):
    result = ready.sandbox().run("hi", claude_args=["--sim-exit", "3"])
    assert result.exit_status == 3 and not result.ok
    assert result.vm_deleted is True
    ready.assert_nothing_left()


def test_run_continue_conversation(ready):
    result = ready.sandbox().run("again", continue_conversation=True)
    assert "--continue" in claude_report(result)["argv"]


def test_run_json_result_is_parsed(ready):
    result = ready.sandbox().run("sum it up", claude_args=["--output-format", "json"])
    assert result.ok
    doc = json.loads(result.stdout)  # stdout is claude's one JSON object and nothing else
    m = result.message
    assert m is not None and m.raw == doc
    assert m.text == "fake reply to: sum it up"
    assert m.cost_usd == pytest.approx(0.0125)
    assert m.num_turns == 1
    assert m.session_id and m.session_id == doc["session_id"]
    assert m.is_error is False and m.subtype == "success"


def test_env_reaches_the_vm_and_never_a_command_line(ready, tmp_path):
    # claude-vm behind a wrapper that records its command line.
    argv_log = tmp_path / "argv.log"
    wrapper = tmp_path / "claude-vm-wrapper"
    wrapper.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" >> "{argv_log}"\nexec "{ready.claude_vm}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
    secret = "s3cr3t value with spaces"
    sb = ready.sandbox(claude_vm=str(wrapper), env={"BASE_VAR": "base"})
    result = sb.run("hi", env={"MY_TOKEN": secret})
    env = claude_report(result)["env"]
    assert env["MY_TOKEN"] == secret and env["BASE_VAR"] == "base"
    logged = argv_log.read_text()
    assert "--inherit-env\nMY_TOKEN\n" in logged
    assert secret not in logged
    assert secret not in ready.log.read_text()  # no limactl command line either
    assert secret not in " ".join(claude_report(result)["argv"])
    with pytest.raises(ValueError):
        sb.run("hi", env={"BAD-NAME": "x"})


def test_stream_yields_claude_messages_and_events_in_order(ready):
    stream = ready.sandbox().stream("stream me")
    items = list(stream)
    sources = [(i.source, i.type) for i in items]
    claude = [t for s, t in sources if s == "claude"]
    assert claude == ["system", "assistant", "result"], sources
    events = [t for s, t in sources if s == "event"]
    assert "session.started" in events and events[-1] == "session.ended"
    first_claude = next(n for n, (s, _) in enumerate(sources) if s == "claude")
    assert sources.index(("event", "session.started")) < first_claude
    assert sources.index(("event", "session.ended")) > sources.index(("claude", "result"))
    # stdout held claude's JSON lines only, stderr claude-vm's events only.
    assert {s for s, _ in sources} == {"claude", "event"}
    argv = items[first_claude].data["sim"]["argv"]
    assert argv[argv.index("--output-format") + 1] == "stream-json" and "--verbose" in argv
    assert stream.result.ok
    assert stream.result.message.text == "fake reply to: stream me"
    assert stream.result.vm_deleted is True
    ready.assert_nothing_left()


def test_stream_left_early_stops_claude_vm_and_deletes_the_vm(ready):
    vm = None
    start = time.monotonic()
    with ready.sandbox().stream("hi", claude_args=["--sim-sleep", "30"]) as stream:
        for item in stream:
            if item.type == "session.started":
                vm = item.data["vm"]
            if item.source == "claude":
                break
        # Meanwhile list() shows the running session, owned by the claude-vm we started.
        live = ready.sandbox().list()["sessions"]
        assert [(s["name"], s["owner_pid"]) for s in live] == [(vm, stream._p.proc.pid)]
    assert time.monotonic() - start < 20
    assert stream._p.proc.returncode == 128 + signal.SIGTERM
    ready.assert_nothing_left()


def test_exec_exit_status_stdout_and_stderr(ready):
    result = ready.sandbox().exec(["sh", "-c", "echo out; echo \"it's err\" >&2; exit 7"])
    assert result.exit_status == 7
    assert result.stdout == "out\n"
    assert result.stderr == "it's err\n"
    assert result.stray_stderr == []
    assert result.vm_deleted is True
    ready.assert_nothing_left()
    with pytest.raises(TypeError):
        ready.sandbox().exec("echo hi")


def test_exec_arguments_are_passed_as_they_are(ready):
    weird = ["a b", "$HOME", "'q'", "*", ""]
    result = ready.sandbox().exec(["printf", "[%s]\\n", *weird])
    assert result.ok
    assert result.stdout == "".join(f"[{w}]\n" for w in weird)


def test_exec_of_a_missing_command_is_its_exit_status(ready):
    result = ready.sandbox().exec(["/no/such/command"])
    assert result.exit_status == 127
    assert "/no/such/command" in result.stderr
    ready.assert_nothing_left()


@pytest.mark.parametrize("call", ["exec", "run", "stream"])
def test_a_failed_runtime_script_is_a_session_error(ready, call):
    script = ready.root / "fail.sh"
    script.write_text("exit 3\n")
    sb = ready.sandbox(flags=["--runtime-script", str(script)])
    with pytest.raises(RuntimeScriptError) as e:
        if call == "exec":
            sb.exec(["true"])
        elif call == "run":
            sb.run("hi")
        else:
            list(sb.stream("hi"))
    assert isinstance(e.value, SessionError)
    assert e.value.script == str(script) and e.value.status == 3
    assert e.value.vm_deleted is True
    ready.assert_nothing_left()


def wait_for_session(world, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if world.sessions():
            return
        time.sleep(0.05)
    raise AssertionError("no session VM appeared")


def test_timeout_stops_claude_vm_and_leaves_no_vm(ready):
    start = time.monotonic()
    with pytest.raises(Timeout) as e:
        ready.sandbox().run("slow", claude_args=["--sim-sleep", "60"], timeout=4)
    assert time.monotonic() - start < 30
    assert "session.started" in types(e.value.events)  # the VM existed
    assert e.value.vm_deleted is True
    assert e.value.exit_code == 128 + signal.SIGTERM  # stopped by SIGTERM, not killed
    ready.assert_nothing_left()


def test_stream_timeout_leaves_no_vm(ready):
    with pytest.raises(Timeout):
        for _ in ready.sandbox().stream("slow", claude_args=["--sim-sleep", "60"], timeout=4):
            pass
    ready.assert_nothing_left()


@pytest.mark.parametrize("call", ["run", "stream", "exec"])
def test_keyboard_interrupt_stops_claude_vm_and_leaves_no_vm(ready, call):
    # A real SIGINT to this process, as a terminal's Ctrl-C sends, once the VM is up.
    def interrupt():
        wait_for_session(ready)
        os.kill(os.getpid(), signal.SIGINT)

    t = threading.Thread(target=interrupt)
    t.start()
    start = time.monotonic()
    sb = ready.sandbox()
    with pytest.raises(KeyboardInterrupt):
        if call == "run":
            sb.run("slow", claude_args=["--sim-sleep", "60"])
        elif call == "stream":
            list(sb.stream("slow", claude_args=["--sim-sleep", "60"]))
        else:
            sb.exec(["sleep", "60"])
    t.join()
    assert time.monotonic() - start < 30
    ready.assert_nothing_left()


def test_a_claude_vm_that_ignores_sigterm_is_killed_after_the_grace_time(world, tmp_path):
    stubborn = tmp_path / "stubborn"
    stubborn.write_text(
        "#!/usr/bin/env python3\nimport signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(60)\n"
    )
    stubborn.chmod(0o755)
    sb = world.sandbox(claude_vm=str(stubborn), grace=1.0)
    start = time.monotonic()
    with pytest.raises(Timeout) as e:
        sb.exec(["true"], timeout=1)
    assert time.monotonic() - start < 10
    assert e.value.exit_code == -signal.SIGKILL


def test_the_readme_example_runs(ready):
    # The README's example, against this world: its project, the simulator, no cargo in the
    # guest (`echo tested` instead of `cargo test`), and the simulator's claude.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("```python\nfrom claude_vm import Sandbox\n")
    code = readme[start + len("```python\n") : readme.index("```", start + 10)]
    assert len([l for l in code.splitlines() if l.strip()]) <= 10
    code = code.replace('Sandbox("~/src/app")', "make_sandbox()")
    code = code.replace('["cargo", "test"]', '["echo", "tested"]')
    printed = []
    env = {"make_sandbox": ready.sandbox, "print": lambda *a: printed.append(a)}
    exec(compile(code, "README.md", "exec"), env)
    assert printed[0][:3] == (0, "fake reply to: fix the failing test", 0.0125)
    assert ".run-" in printed[1][0] and printed[1][1] is True
    assert ("claude", "assistant") in printed and ("event", "session.ended") in printed
    assert printed[-1] == ("tested\n",)
    ready.assert_nothing_left()


def test_a_killed_program_leaves_no_vm_once_the_session_ends(ready, tmp_path):
    # The program dies by SIGKILL (nothing of it runs): claude-vm, in its own session, is not
    # signalled; it finishes the session (claude here ends after 3 seconds) and deletes the VM.
    program = tmp_path / "program.py"
    program.write_text(
        "import sys\nfrom claude_vm import Sandbox\n"
        "Sandbox(sys.argv[1], claude_vm=sys.argv[2], process_env={"
        + ", ".join(f"{k!r}: {v!r}" for k, v in ready.env.items())
        + "}).run('hi', claude_args=['--sim-sleep', '3'])\n"
    )
    child = subprocess.Popen([sys.executable, str(program), str(ready.project), ready.claude_vm])
    try:
        wait_for_session(ready)
    finally:
        child.kill()
        child.wait()
    assert ready.sessions() != []  # the session outlives the program ...
    end = time.monotonic() + 30
    while time.monotonic() < end and (ready.sessions() or ready.journal()):
        time.sleep(0.1)
    ready.assert_nothing_left()  # ... and deletes its VM when it ends
