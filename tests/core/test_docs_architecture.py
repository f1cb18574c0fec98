"""docs/architecture.md tells how a call flows file by file: what it names must be the code.

The page is read by whoever writes a routing rule or a plugin; a wrong order of the
rules or a file that moved sends them to the wrong place, so the claims are checked.
"""

from __future__ import annotations

import ast
import re

from mailcall.core.decisions.rules import default_rules
from mailcall.core.host.collect import call_rules
from mailcall.core.host.plugin_manager import make_plugin_manager

from .conftest import REPO

PAGE = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
CALL = PAGE[PAGE.index("## A call, file by file"):PAGE.index("## A voicemail, file by file")]


def _written_order(text: str) -> list[tuple[str, int]]:
    """The `name` (order) pairs of the sentence that lists the rules."""
    return [(name, int(order)) for name, order in re.findall(r"`([a-z-]+)` \((\d+)\)", text)]


def test_the_call_flow_lists_the_builtin_rules_in_their_running_order():
    written = _written_order(CALL)
    assert written == [(r.name, r.order) for r in default_rules()], (
        "docs/architecture.md, 'A call, file by file' step 3: the rules are not written "
        "in the order core/decisions/rules/*.py declare; write them as `name` (order)")
    offered = [(r.name, r.order) for r in call_rules(make_plugin_manager())]
    assert written == offered  # what the plugins give mailcall serve, built-ins alone here


def test_the_policy_page_lists_the_same_order():
    text = (REPO / "docs" / "policy.md").read_text(encoding="utf-8")
    section = text[text.index("## How a call is decided"):]
    listed = [(name, int(order)) for name, order in
              re.findall(r"^\d+\. \*\*([a-z-]+)\*\* \((\d+)\)", section, re.M)]
    assert listed == [(r.name, r.order) for r in default_rules()]


def test_every_file_the_page_names_exists():
    """Full paths anywhere; bare names in the table belong to the row's folder."""
    missing = []
    for line in PAGE.splitlines():
        row = re.match(r"\| `([a-z_/]+/)` \|", line)
        for name in re.findall(r"`([A-Za-z0-9_./-]+\.(?:py|toml|conf|md))`", line):
            path = REPO / name if "/" in name else (REPO / row.group(1) / name if row else None)
            if path is not None and not path.exists():
                missing.append(name)
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def test_every_function_the_page_places_in_a_file_is_defined_there():
    """"`take_message` of `agi/handlers/voicemail.py`": the function is in that file."""
    claims = re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)` of\s+`([a-z_/]+\.py)`", PAGE)
    assert ("dial_argument", "core/policy/telephony.py") in claims
    wrong = []
    for name, path in claims:
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        defined = {node.name for node in tree.body
                   if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
        if name not in defined:
            wrong.append(f"{name} of {path}")
    assert not wrong, f"docs/architecture.md places these where they are not: {wrong}"
