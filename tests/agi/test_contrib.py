"""The contrib dialplan: every variable it uses is documented, every script it calls exists."""

from __future__ import annotations

import re

from mailcall.plugins import agi as agi_plugin

from .support import REPO

SNIPPET = REPO / "contrib" / "asterisk" / "extensions-mailcall.conf"


def test_every_variable_is_documented():
    text = SNIPPET.read_text()
    header = "\n".join(line for line in text.splitlines() if line.startswith(";"))
    code = "\n".join(line for line in text.splitlines() if not line.startswith(";"))
    used = set(re.findall(r"MAILCALL_[A-Z_]+", code))
    assert used
    missing = sorted(v for v in used if v not in header)
    assert not missing, f"undocumented in the header: {missing}"


def test_scripts_called_exist_and_statuses_documented():
    text = SNIPPET.read_text()
    scripts = set(re.findall(r"AGI\(\$\{MAILCALL_URL\}/([a-z]+)", text))
    assert scripts == set(agi_plugin.mailcall_agi_handlers(runtime=None))
    for status in ("ANSWERED", "VOICEMAIL", "MISSED_CALL", "CALLER_HUNGUP", "UNREACHABLE",
                   "NO_ROUTE", "DEPOSIT_FAILED", "UNKNOWN_SCRIPT", "ERROR", "FAX_FAILED",
                   "GREETING_SAVED", "AUTH_FAILED"):
        assert status in text


def test_contexts_are_balanced():
    text = SNIPPET.read_text()
    contexts = re.findall(r"^\[([a-z-]+)\]", text, re.M)
    assert len(contexts) == len(set(contexts))
    for target in re.findall(r"(?:Goto|Gosub)\(([a-z-]+),", text):
        assert target in contexts, target
