"""One home for the variable names: agi/dialplan_variables.py and the shipped dialplan agree,
and the AGI code names variables only through that module."""

from __future__ import annotations

import ast
import re

from mailcall.agi import dialplan_variables as dv
from tests.support import REPO

SNIPPET = REPO / "contrib" / "asterisk" / "extensions-mailcall.conf"
NAME = re.compile(r"MAILCALL_[A-Z_]*")
ASTERISK_NAMES = {dv.DIALSTATUS, dv.FAXSTATUS, dv.FAXERROR, dv.FAXPAGES, dv.FAXBITRATE,
                  dv.FAXRESOLUTION, dv.REMOTESTATIONID, dv.FAX_FILE, dv.LANGUAGE}


def _code_lines() -> list[str]:
    return [line for line in SNIPPET.read_text().splitlines()
            if not line.lstrip().startswith(";")]


def test_the_dialplan_uses_exactly_the_names_of_the_module():
    used = {name for line in _code_lines() for name in NAME.findall(line)}
    assert used == dv.DIALPLAN_NAMES, (
        f"only in the dialplan: {sorted(used - dv.DIALPLAN_NAMES)}; "
        f"only in agi/dialplan_variables.py: {sorted(dv.DIALPLAN_NAMES - used)}")


def test_the_dialplan_clears_exactly_what_mailcall_leaves():
    (mset,) = [m for line in _code_lines() for m in re.findall(r"MSet\(([^)]*)\)", line)]
    cleared = [item.removesuffix("=") for item in mset.split(",")]
    assert cleared == [dv.STATUS, *dv.LEFT.values()]


def _agi_sources():
    for path in sorted((REPO / "agi").rglob("*.py")):
        if path.name != "dialplan_variables.py":
            yield path, ast.parse(path.read_text(), str(path))


def test_the_agi_code_spells_no_variable_name_itself():
    """Names come from the module, so a rename is one edit (docstrings and log text aside)."""
    names = dv.DIALPLAN_NAMES | ASTERISK_NAMES | set(dv.LEFT.values())
    spelled = [f"{path.relative_to(REPO)}:{node.lineno}: {node.value!r}"
               for path, tree in _agi_sources() for node in ast.walk(tree)
               if isinstance(node, ast.Constant) and node.value in names]
    assert spelled == []


def test_every_variable_a_handler_leaves_is_one_the_dialplan_clears():
    keywords = set()
    for path in [*(REPO / "agi").rglob("*.py"), *(REPO / "plugins").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "set_status":
                keywords |= {k.arg for k in node.keywords if k.arg is not None}
    assert keywords and keywords <= set(dv.LEFT), sorted(keywords - set(dv.LEFT))


def test_built_in_names_from_the_table_a_plugin_s_own_by_the_same_rule():
    assert {keyword: dv.left(keyword) for keyword in dv.LEFT} == dict(dv.LEFT)
    assert all(dv.left(k) == dv.PREFIX + k.upper() for k in dv.LEFT)
    assert dv.left("colour") == "MAILCALL_COLOUR"  # a third-party handler's variable
