# claude-vm: Claude Code's first-run answers, merged into the JSON it keeps (generated; runs in
# the VM). Only the keys named here change; everything else in the files (a login stored by
# `claude-vm login`, MCP servers, settings) is kept as it is. Which keys and why: DEVELOPMENT.md,
# "Claude Code's state in the VM".
#
#   python3 claude_state.py template VERSION   at setup: onboarding done, bypass mode accepted
#   python3 claude_state.py session DIR...     per session: DIRs trusted, the API key approved
import json
import os
import sys
import tempfile

# What Claude Code writes for a project it has not seen (its own default project entry).
NEW_PROJECT = {
    "allowedTools": [],
    "mcpContextUris": [],
    "mcpServers": {},
    "enabledMcpjsonServers": [],
    "disabledMcpjsonServers": [],
    "hasTrustDialogAccepted": False,
    "hasClaudeMdExternalIncludesApproved": False,
    "hasClaudeMdExternalIncludesWarningShown": False,
}


def config_home():
    return os.environ.get("CLAUDE_CONFIG_DIR") or os.path.join(os.path.expanduser("~"), ".claude")


def global_config():
    """The file Claude Code reads its global config from (the legacy one wins if present)."""
    if os.environ.get("CLAUDE_CONFIG_DIR"):
        return os.path.join(os.environ["CLAUDE_CONFIG_DIR"], ".claude.json")
    legacy = os.path.join(config_home(), ".config.json")
    if os.path.isfile(legacy):
        return legacy
    return os.path.join(os.path.expanduser("~"), ".claude.json")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        # Never replace a file we cannot read: Claude Code may still make sense of it.
        sys.exit(f"claude-vm: cannot read {path} ({e}); Claude Code may ask its first-run questions")
    if not isinstance(data, dict):
        sys.exit(f"claude-vm: {path} is not a JSON object; Claude Code may ask its first-run questions")
    return data


def save(path, data):
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".claude-vm-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def template(version):
    path = global_config()
    config = load(path)
    config["hasCompletedOnboarding"] = True
    config["lastOnboardingVersion"] = version
    # --dangerously-skip-permissions is claude-vm's whole point: its warning is answered.
    config["bypassPermissionsModeAccepted"] = True
    save(path, config)
    settings_path = os.path.join(config_home(), "settings.json")
    settings = load(settings_path)
    settings["skipDangerousModePermissionPrompt"] = True
    save(settings_path, settings)


def session(dirs):
    path = global_config()
    config = load(path)
    projects = config.get("projects")
    if not isinstance(projects, dict):
        projects = {}
    for d in dirs:
        entry = projects.get(d)
        entry = dict(entry) if isinstance(entry, dict) else dict(NEW_PROJECT)
        entry["hasTrustDialogAccepted"] = True
        projects[d] = entry
    config["projects"] = projects
    key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
    if key:
        # Claude Code remembers an approved key by its last 20 characters.
        tail = key[-20:]
        responses = config.get("customApiKeyResponses")
        responses = responses if isinstance(responses, dict) else {}
        approved = [k for k in responses.get("approved") or [] if isinstance(k, str)]
        rejected = [k for k in responses.get("rejected") or [] if isinstance(k, str) and k != tail]
        if tail not in approved:
            approved.append(tail)
        config["customApiKeyResponses"] = {"approved": approved, "rejected": rejected}
    save(path, config)


def main(argv):
    if len(argv) == 2 and argv[0] == "template":
        template(argv[1])
    elif len(argv) >= 1 and argv[0] == "session":
        session(argv[1:])
    else:
        sys.exit("usage: claude_state.py template VERSION | session DIR...")


if __name__ == "__main__":
    main(sys.argv[1:])
