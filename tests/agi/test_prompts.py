"""Every prompt mailcall plays exists in the prompt sets the docs install (issue 10, section 2).

``greeting.py`` played ``vm-invalid-option``, which Debian's core prompts do not
have: the caller heard silence. The prompts live in one table
(:mod:`mailcall.agi.prompts`); this checks the table against Debian's English
and French prompts (``asterisk-core-sounds-en-wav`` / ``-fr-wav``, installed
by CI from ``.ci/apt-packages.txt``), that no handler names a prompt outside
the table, and that what the handlers really send is in it.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

from mailcall.agi import prompts

from .fake_asterisk import Call
from .harness import DURING_EMMA_ABSENCE, make_runtime
from .support import REPO
from .test_handlers import drive

SOUNDS = Path("/usr/share/asterisk/sounds")
PROMPT_SETS = {"en": SOUNDS / "en_US_f_Allison", "fr": SOUNDS / "fr_CA_f_June"}
"""Where Debian's asterisk-core-sounds-{en,fr}-wav put their files."""
PACKAGES = {"en": "asterisk-core-sounds-en-wav", "fr": "asterisk-core-sounds-fr-wav"}


def installed(language: str) -> set[str]:
    folder = PROMPT_SETS[language]
    if not folder.is_dir():
        pytest.fail(f"{folder} is missing: install Debian's {PACKAGES[language]} "
                    "(apt-get install it; CI takes it from .ci/apt-packages.txt). Without "
                    "it this test cannot tell whether callers hear the prompts or silence.")
    names = set()
    for root, _dirs, files in os.walk(folder):
        for name in files:
            names.add(os.path.relpath(os.path.join(root, name), folder).rsplit(".", 1)[0])
    return names


def test_ci_installs_the_prompt_sets():
    wanted = (REPO / ".ci" / "apt-packages.txt").read_text().split()
    assert set(PACKAGES.values()) <= set(wanted)


@pytest.mark.parametrize("language", sorted(PROMPT_SETS))
def test_every_prompt_of_the_table_is_installed(language):
    have = installed(language)
    missing = sorted(name for name in prompts.ALL if name not in have)
    assert not missing, f"not in {PROMPT_SETS[language]}: {missing}"


def test_the_table_is_complete():
    constants = {value for name, value in vars(prompts).items()
                 if name.isupper() and isinstance(value, str)}
    assert constants == prompts.ALL
    for played in prompts.STOCK_GREETINGS.values():
        assert set(played) <= prompts.ALL
    assert "vm-invalid-option" not in prompts.ALL


def _handler_sources() -> list[Path]:
    return [p for p in sorted((REPO / "agi").rglob("*.py")) if p.name != "prompts.py"]


PLAYING = {"stream_file", "get_data"}


def test_no_handler_names_a_prompt_itself():
    """A literal prompt name anywhere in agi/ (outside prompts.py) would bypass the table."""
    known = installed("en") | installed("fr") | prompts.ALL
    found = []
    for path in _handler_sources():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', '?')}"
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in PLAYING and node.args
                    and isinstance(node.args[0], ast.Constant)):
                found.append(f"{where}: {node.func.attr}({node.args[0].value!r})")
            elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and node.value in known):
                found.append(f"{where}: {node.value!r}")
    assert not found, "use a constant of mailcall.agi.prompts: " + "; ".join(found)


def _played(call: Call) -> set[str]:
    """Prompt names (not file paths) the calls asked Asterisk to play."""
    names = set()
    for line in call.commands:
        words = line.split()
        if words[:2] in (["STREAM", "FILE"], ["GET", "DATA"]) and not words[2].startswith("/"):
            names.add(words[2])
        if words[:2] == ["RECORD", "FILE"] and "BEEP" in words:
            names.add(prompts.BEEP)
    return names


def test_what_the_handlers_send_is_in_the_table(tmp_path):
    calls = [
        (tmp_path / "a", None, Call(args=("201",), dials=["busy"] * 3)),      # busy greeting
        (tmp_path / "b", None, Call(args=("203",), dials=["noanswer"])),      # unavailable
        (tmp_path / "c", DURING_EMMA_ABSENCE, Call(args=("205",), dials=["noanswer"] * 3)),
        (tmp_path / "d", None, Call(script="greeting", callerid="201",
                                    get_data=["1111", "2468", "9", "8", "2"])),  # wrong, invalid
        (tmp_path / "e", None, Call(script="greeting", callerid="201",
                                    get_data=["0", "0", "0"])),  # goodbye
    ]
    played: set[str] = set()
    for folder, at, call in calls:
        folder.mkdir()
        rt = make_runtime(folder) if at is None else make_runtime(folder, at=at)
        played |= _played(drive(rt, call))
    assert played <= prompts.ALL, played - prompts.ALL
    assert {prompts.IS_ON_PHONE, prompts.IS_UNAVAILABLE, prompts.LEAVE_MESSAGE, prompts.BEEP,
            prompts.ENTER_PIN, prompts.WRONG_PIN, prompts.CHOOSE_GREETING,
            prompts.INVALID_CHOICE, prompts.SAVED, prompts.GOODBYE} <= played


def test_the_docs_install_and_link_the_prompt_sets_this_test_checks():
    """Asterisk reads <astdatadir>/sounds/<language>; Debian's packages install under the
    voice's name. Without the docs' link a French caller silently hears English."""
    docs = (REPO / "docs" / "asterisk.md").read_text()
    for language, folder in PROMPT_SETS.items():
        assert PACKAGES[language] in docs
        assert f"ln -sfn {folder} {SOUNDS / language}" in docs
