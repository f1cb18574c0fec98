"""The README's "Installing for real" works as written, and the systemd unit runs what it installs.

Issue 10 §4: `pip install .` as root on bookworm fails (PEP 668) and the unit ran
/usr/local/bin/mailcall. The install path is now one virtual environment, /opt/mailcall.
These tests read the paths and commands out of the README, the unit and docs/asterisk.md
and compare them with each other, so that none of them is written twice here; and they run
the README's own commands, in a temporary directory standing in for /opt/mailcall.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from mailcall.core.policy.features import load_defaults

from .conftest import EXAMPLE, REPO

UNIT = REPO / "contrib" / "systemd" / "mailcall.service"
DEBIAN_PYTHON = Path("/usr/bin/python3")
# What a checkout holds besides its sources: never part of what is installed.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", ".hypothesis", ".run")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else None]


def _sh_blocks(text: str) -> list[list[list[str]]]:
    """The ```sh blocks of `text`, each a list of commands (comments dropped), split as sh would."""
    blocks = re.findall(r"```sh\n(.*?)```", text, flags=re.S)
    return [[shlex.split(line, comments=True) for line in block.splitlines()
             if shlex.split(line, comments=True)] for block in blocks]


INSTALL = _section((REPO / "README.md").read_text(encoding="utf-8"), "## Installing for real")
STEPS = _sh_blocks(INSTALL)
COMMANDS = [cmd for block in STEPS for cmd in block]
# The one command that says without systemd what the unit says with it, in backquotes.
NO_SYSTEMD = next(shlex.split(m) for m in re.findall(r"`(runuser [^`]+)`", INSTALL))
ASTERISK_DIRS = _section((REPO / "docs" / "asterisk.md").read_text(encoding="utf-8"),
                         "## 2. Directories and permissions")


def _find(first: str, *then: str) -> list[str]:
    """The one README install command starting with these words."""
    found = [c for c in COMMANDS if c[:1 + len(then)] == [first, *then]]
    assert found, f"README install section has no command '{' '.join((first, *then))} ...'"
    return found[0]


VENV = _find("python3", "-m", "venv")[-1]
POLICY = _find("mailcall", "init")[-1]


def _unit() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_unit_runs_the_venv_and_policy_the_readme_installs():
    unit = _unit()
    for key in ("ExecStartPre", "ExecStart"):
        (line,) = unit[key]
        argv = shlex.split(line)
        assert argv[0] == f"{VENV}/bin/mailcall", (key, argv, VENV)
        assert argv[-2:] == ["--policy", POLICY], (key, argv, POLICY)
    assert shlex.split(unit["ExecStart"][0]) == NO_SYSTEMD[NO_SYSTEMD.index("--") + 1:], \
        "the README's start without systemd must run what the unit's ExecStart runs"
    assert NO_SYSTEMD[:3] == ["runuser", "-u", unit["User"][0]]
    assert ["useradd", "--system"] == _find("useradd")[:2] and _find("useradd")[-1] == \
        unit["User"][0]
    (copy,) = [c for c in COMMANDS if c[:2] == ["cp", str(UNIT.relative_to(REPO))]]
    assert UNIT.read_text().startswith(f"# {copy[2]}\n"), "the unit names where it is copied"
    # The folders the unit must write are the ones the README creates (and the defaults use).
    created = {c[-1] for c in COMMANDS if c[:2] == ["install", "-d"]}
    defaults = load_defaults()["server"]
    assert {defaults["spool_dir"], defaults["greetings_dir"]} <= created, created
    for path in unit["ReadWritePaths"][0].split():
        documented = any(path.lstrip("-") in (REPO / "docs" / d).read_text()
                         for d in ("asterisk.md", "dovecot.md"))
        assert path.lstrip("-") in created or (path.startswith("-") and documented), path


def test_every_program_the_unit_runs_is_installed_by_the_readme():
    """A minimal bookworm has no /bin/kill (procps is only "important"): ExecReload failed."""
    installed = set(_find("apt-get", "install")[3:])
    for key, values in _unit().items():
        if not key.startswith("Exec"):
            continue
        program = shlex.split(values[0])[0]
        if program.startswith(f"{VENV}/"):
            continue
        owner = subprocess.run(["dpkg", "-S", program], capture_output=True, text=True)
        assert owner.returncode == 0, f"{key}: no Debian package ships {program}"
        package = owner.stdout.split(":")[0]
        essential = subprocess.run(["dpkg-query", "-W", "-f=${Essential}", package],
                                   capture_output=True, text=True).stdout
        assert package in installed or essential == "yes", \
            f"{key} runs {program} of {package}: add it to the README's apt-get install"


def test_readme_shares_the_asterisk_folders_exactly_as_docs_asterisk_says():
    """Step 3 repeats docs/asterisk.md §2 word for word: one set of owners and modes."""
    (step,) = [b for b in STEPS if any(c[:2] == ["install", "-d"] and "asterisk" in c for c in b)]
    (theirs,) = _sh_blocks(ASTERISK_DIRS)
    assert step == theirs


def test_no_exec_directory_takes_asterisks_folders():
    """StateDirectory=mailcall chowned /var/lib/mailcall recursively, greetings/ included.

    systemd (src/shared/chown-recursive.c) re-owns the whole tree to User:Group when the
    top directory is not already theirs, which is how docs/asterisk.md §2 leaves it: the
    greetings folder would lose the asterisk group, and Asterisk its right to write there.
    """
    roots = {"StateDirectory": "/var/lib", "CacheDirectory": "/var/cache",
             "LogsDirectory": "/var/log", "RuntimeDirectory": "/run",
             "ConfigurationDirectory": "/etc"}
    shared = [c[-1] for c in _sh_blocks(ASTERISK_DIRS)[0] if c[:2] == ["install", "-d"]]
    assert shared, "docs/asterisk.md §2 gives no folder to Asterisk's group"
    for key, values in _unit().items():
        for name in (n for v in values for n in v.split()) if key in roots else ():
            owned = f"{roots[key]}/{name}"
            taken = [d for d in shared if d == owned or d.startswith(owned + "/")]
            assert not taken, f"{key}={name} would re-own {taken} to the unit's user"


def test_readme_install_names_only_files_and_commands_that_exist():
    from mailcall.core.cli import build_parser
    from mailcall.core.host.plugin_manager import make_plugin_manager

    parser = build_parser(make_plugin_manager())
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for cmd in [*COMMANDS, NO_SYSTEMD]:
        for word in cmd:
            assert not word.startswith("contrib/") or (REPO / word).exists(), word
        if cmd[0] == "ln":
            continue  # names the program, does not run it
        for at, word in enumerate(cmd[:-1]):
            if (word == "mailcall" or word.endswith("/bin/mailcall")) \
                    and not cmd[at + 1].startswith("-"):
                assert cmd[at + 1] in sub.choices, cmd


def test_wheel_holds_only_the_mailcall_namespace(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                    str(src)], check=True, capture_output=True, timeout=600)
    (wheel,) = tmp_path.glob("mailcall-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"mailcall", wheel.name.split("-py3")[0] + ".dist-info"}, tops
    for module in ("core", "agi", "sieve", "plugins", "deposit"):
        assert f"mailcall/{module}/__init__.py" in names
    assert "mailcall/core/data/defaults.toml" in names
    assert "mailcall/core/data/small-company.toml" in names
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "mailcall = mailcall.core.cli:main" in entry_points
    assert "rules = mailcall.plugins.rules" in entry_points


def _remap(word: str, root: Path) -> str:
    """A README path moved under `root`: /opt/mailcall and /etc/mailcall of a machine of its own."""
    for prefix in (VENV, "/usr/local/bin", str(Path(POLICY).parent)):
        if word == prefix or word.startswith(prefix + "/"):
            return str(root) + word
    return word


def test_readme_install_steps_on_a_fresh_venv(tmp_path):
    """Steps 1 and 2 of the README, run as written but under a temporary root.

    What needs the real machine (apt-get, useradd, the ownership of /etc/mailcall) is
    checked instead: python3-venv is installed, and Debian's own python3 makes the venv.
    The venv gets the checkout itself, not an editable link to it.
    """
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "python3-venv"],
                            capture_output=True, text=True)
    assert status.stdout.endswith("ok installed"), \
        "README step 1 installs python3-venv: it is missing here (.ci/apt-packages.txt)"
    assert DEBIAN_PYTHON.exists(), "README step 1 uses Debian's python3: /usr/bin/python3"
    assert "python3-venv" in _find("apt-get", "install")
    src, root = tmp_path / "src", tmp_path / "root"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)
    (root / "usr" / "local" / "bin").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{root}/usr/local/bin:/usr/bin:/bin"}
    env.pop("VIRTUAL_ENV", None)
    ran = []
    for cmd in STEPS[0] + STEPS[1]:
        if cmd[0] in ("apt-get", "useradd", "install"):
            continue  # the machine's own state: checked above
        argv = [_remap(w, root) for w in cmd]
        if argv[0] == "python3":
            argv[0] = str(DEBIAN_PYTHON)
        out = subprocess.run(argv, cwd=src, env=env, capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, (cmd, out.stdout[-2000:], out.stderr[-2000:])
        ran.append((cmd, out.stdout))
    assert [c[0] for c, _ in ran][:3] == ["python3", f"{VENV}/bin/pip", "ln"], ran
    venv = Path(_remap(VENV, root))
    assert not list(venv.glob("lib/python3*/site-packages/__editable__*")), "installed editable"
    assert "policy OK" in ran[-1][1], ran[-1]

    mailcall = venv / "bin" / "mailcall"
    example = EXAMPLE
    out = subprocess.run([str(mailcall), "check", "--policy", str(example)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0 and "policy OK" in out.stdout, out.stderr
    helped = subprocess.run([str(mailcall), "--help"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert helped.returncode == 0 and "check" in helped.stdout and "serve" in helped.stdout
    imports = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import mailcall.core, mailcall.agi, mailcall.sieve, "
                              "mailcall.plugins, mailcall.deposit, importlib.util as u; "
                              "print(mailcall.core.__file__, u.find_spec('core'), "
                              "u.find_spec('agi'))"],
                             capture_output=True, text=True, cwd=tmp_path, check=True)
    where, *tops = imports.stdout.split()
    assert where.startswith(str(venv)) and tops == ["None", "None"], imports.stdout

    # The unit, with the venv where the test made it, is one systemd accepts without a word.
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze (Debian package systemd) verifies the unit: install it"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(f"{VENV}/bin/", f"{venv}/bin/"))
    verify = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert verify.returncode == 0 and not verify.stderr.strip(), verify.stderr
