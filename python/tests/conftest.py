"""A fresh world per test, as tests/e2e/support.rs makes one: a HOME, a git project, a bin
directory whose `limactl` is the Lima simulator, and an environment holding nothing else.

The binaries come from `$CLAUDE_VM_BIN` and `$LIMA_SIM_BIN`, else from the checkout's target
directory (`$CARGO_TARGET_DIR` or ../target), built with cargo when missing."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _target() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))


def _binaries():
    claude_vm = os.environ.get("CLAUDE_VM_BIN") or str(_target() / "debug" / "claude-vm")
    sim = os.environ.get("LIMA_SIM_BIN") or str(_target() / "debug" / "examples" / "limactl")
    if not (os.path.exists(claude_vm) and os.path.exists(sim)):
        subprocess.run(
            ["cargo", "build", "--quiet", "--bin", "claude-vm", "--example", "limactl"],
            cwd=REPO,
            check=True,
        )
    return claude_vm, sim


def _git(cwd, *args):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


class World:
    def __init__(self, root: Path, claude_vm: str, sim: str):
        self.root = root
        self.home = root / "home"
        self.bin = root / "bin"
        self.project = root / "src" / "app"
        for d in (self.home, self.bin, self.project):
            d.mkdir(parents=True)
        (self.bin / "limactl").symlink_to(sim)
        _git(self.project, "init", "-q", "-b", "main")
        (self.project / "README.md").write_text("hello\n")
        _git(self.project, "add", ".")
        _git(self.project, "commit", "-q", "-m", "init")
        self.claude_vm = claude_vm
        self.lima_home = self.home / ".lima"
        self.log = root / "limactl.log"
        self.env = {
            "HOME": str(self.home),
            "PATH": f"{self.bin}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "LIMA_SIM_LOG": str(self.log),
        }

    def sandbox(self, **kw):
        from claude_vm import Sandbox

        kw.setdefault("project", self.project)
        kw.setdefault("claude_vm", self.claude_vm)
        kw.setdefault("process_env", self.env)
        return Sandbox(**kw)

    def instances(self):
        """Lima instances on disk."""
        if not self.lima_home.is_dir():
            return []
        return sorted(p.name for p in self.lima_home.iterdir() if (p / "lima.yaml").exists())

    def sessions(self):
        """Session clones on disk (templates have no dot in their names)."""
        return [n for n in self.instances() if ".run-" in n]

    def journal(self):
        d = self.home / ".local/share/claude-vm/journal"
        return sorted(p.name for p in d.glob("*.json")) if d.is_dir() else []

    def limactl_list(self):
        out = subprocess.run(
            [str(self.bin / "limactl"), "list", "--json"],
            env=self.env,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return [json.loads(line)["name"] for line in out.splitlines() if line.strip()]

    def assert_nothing_left(self):
        assert self.sessions() == [], self.instances()
        assert [n for n in self.limactl_list() if "." in n] == []
        assert self.journal() == []


@pytest.fixture(scope="session")
def binaries():
    return _binaries()


@pytest.fixture
def world(binaries):
    # A short path, as support.rs uses: Lima's socket paths must stay under 104 characters.
    root = Path(tempfile.mkdtemp(prefix="cvm-py-")).resolve()
    try:
        yield World(root, *binaries)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def ready(world):
    """A world whose project has a template (`claude-vm setup` ran)."""
    world.sandbox().setup()
    return world
