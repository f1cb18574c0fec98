"""The contrib dialplan and docs/asterisk.md say what the code does.

Every variable the snippet uses is documented, every script it calls exists,
and every ``MAILCALL_STATUS`` / ``MAILCALL_RESULT`` value the handlers can
leave is listed in the snippet's header and in docs/asterisk.md §7. The
statuses are read from the code itself (each ``set_status(...)`` call and the
values its argument can take), so a new status cannot go undocumented. How the
dialplan behaves on hostile numbers is proven on the real Asterisk in
tests/live/test_dialplan_live.py; its shape in test_contrib_dialplan.py.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

from mailcall.agi.handlers import fax as fax_handler
from mailcall.agi.handlers import route as route_handler
from mailcall.agi.replies import DIAL_STATUSES
from mailcall.plugins import agi as agi_plugin
from mailcall.plugins import phonemenu as phonemenu_plugin

from .support import REPO

SNIPPET = REPO / "contrib" / "asterisk" / "extensions-mailcall.conf"
DOC = REPO / "docs" / "asterisk.md"
CODE_DIRS = (REPO / "agi", REPO / "plugins")


def _header() -> str:
    text = SNIPPET.read_text()
    return "\n".join(line for line in text.split("\n[", 1)[0].splitlines()
                     if line.startswith(";"))


def _code() -> str:
    return "\n".join(line for line in SNIPPET.read_text().splitlines()
                     if not line.lstrip().startswith(";"))


def _extensions() -> dict[str, set[str]]:
    """context -> the extensions it defines, from the snippet's code lines."""
    found: dict[str, set[str]] = {}
    context = ""
    for line in _code().splitlines():
        head = re.match(r"\[([a-z-]+)\]", line)
        if head:
            context = head[1]
            found.setdefault(context, set())
        exten = re.match(r"exten => ([^,]+),", line)
        if exten:
            found[context].add(exten[1])
    return found


def _doc_section(number: int) -> str:
    text = DOC.read_text()
    start = text.index(f"\n## {number}. ")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def _doc_row(section: str, variable: str) -> str:
    for line in section.splitlines():
        if line.startswith(f"| `{variable}` |"):
            return line
    raise AssertionError(f"no table row for {variable} in docs/asterisk.md")


def _header_block(variable: str) -> str:
    """The header's paragraph about `variable`, up to the next variable."""
    lines = _header().splitlines()
    start = next(i for i, line in enumerate(lines)
                 if re.match(rf";\s+{variable}\s", line))
    out = [lines[start]]
    for line in lines[start + 1:]:
        if re.match(r";\s{1,4}[A-Z][A-Z_]+\s", line) or line.strip() == ";":
            break
        out.append(line)
    return "\n".join(out)


def _string_values(node: ast.expr) -> set[str] | None:
    """The strings an expression can evaluate to, or None if it cannot be told."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        body, orelse = _string_values(node.body), _string_values(node.orelse)
        return None if body is None or orelse is None else body | orelse
    return None


def statuses_the_code_sets() -> dict[str, str]:
    """Every MAILCALL_STATUS value a ``set_status(...)`` call can leave -> where."""
    found: dict[str, str] = {}
    for directory in CODE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for func in ast.walk(tree):
                if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                assigned: dict[str, set[str] | None] = {}
                for node in ast.walk(func):
                    if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                            and isinstance(node.targets[0], ast.Name):
                        values = _string_values(node.value)
                        known = assigned.get(node.targets[0].id, set())
                        assigned[node.targets[0].id] = (
                            None if values is None or known is None else known | values)
                for node in ast.walk(func):
                    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                            and node.func.attr == "set_status" and node.args):
                        continue
                    arg = node.args[0]
                    where = f"{path.relative_to(REPO)}:{node.lineno}"
                    values = (assigned.get(arg.id) if isinstance(arg, ast.Name)
                              else _string_values(arg))
                    assert values, (f"{where}: cannot tell which MAILCALL_STATUS this "
                                    "set_status() leaves; use string constants")
                    for value in values:
                        found.setdefault(value, where)
    return found


def results_the_code_sets() -> set[str]:
    """MAILCALL_RESULT: DIALSTATUS as dial_status() normalises it (or UNKNOWN)."""
    return set(DIAL_STATUSES) | {"UNKNOWN"}


# ------------------------------------------------------------------ tests


def test_every_variable_is_documented():
    used = set(re.findall(r"MAILCALL_[A-Z_]+", _code()))
    assert used
    header = _header()
    missing = sorted(v for v in used if not re.search(rf"\b{v}\b", header))
    assert not missing, f"undocumented in the header: {missing}"


def test_scripts_called_exist():
    scripts = set(re.findall(r"AGI\(\$\{MAILCALL_URL\}/([a-z]+)", SNIPPET.read_text()))
    assert scripts == set(agi_plugin.mailcall_agi_handlers(runtime=None)) | set(
        phonemenu_plugin.mailcall_agi_handlers(runtime=None))


def test_status_extraction_sees_every_handler():
    found = statuses_the_code_sets()
    for status, module in (("ANSWERED", "route"), ("VOICEMAIL", "voicemail"),
                           ("MISSED_CALL", "voicemail"), ("FAX_FAILED", "fax"),
                           ("GREETING_SAVED", "greeting"), ("UNKNOWN_SCRIPT", "server"),
                           ("ERROR", "server")):
        assert module in found[status], (status, found[status])
    assert len(found) >= 18


def test_every_status_the_code_sets_is_documented_in_snippet_and_docs():
    header = _header_block("MAILCALL_STATUS")
    row = _doc_row(_doc_section(7), "MAILCALL_STATUS")
    for status, where in statuses_the_code_sets().items():
        assert re.search(rf"\b{status}\b", header), f"{status} ({where}) not in the .conf"
        assert f"`{status}`" in row, f"{status} ({where}) not in docs/asterisk.md §7"


def test_every_result_is_documented_in_snippet_and_docs():
    header = _header_block("MAILCALL_RESULT")
    row = _doc_row(_doc_section(7), "MAILCALL_RESULT")
    for result in results_the_code_sets():
        assert re.search(rf"\b{result}\b", header), f"{result} not in the .conf"
        assert f"`{result}`" in row, f"{result} not in docs/asterisk.md §7"
    assert "empty" in header and "empty" in row  # nothing dialled


def test_route_docstring_and_docs_agree_on_statuses():
    doc = route_handler.__doc__ or ""
    listed = set(re.findall(r"\b[A-Z][A-Z_]{3,}\b",
                            doc.split("``MAILCALL_STATUS``", 1)[1].split("``MAILCALL_RESULT``")[0]))
    row = _doc_row(_doc_section(7), "MAILCALL_STATUS")
    assert listed and all(f"`{s}`" in row for s in listed), listed


def test_statuses_that_move_on_are_the_documented_ones():
    row = next(line for line in _doc_section(6).splitlines()
               if line.startswith("| `mailcall-route` |"))
    for status in route_handler.MOVE_ON - {"UNKNOWN"}:
        assert status in row, status
    assert "does not know" in row  # UNKNOWN, in words


def test_contexts_are_balanced():
    """Every jump lands on an extension that exists: Goto/Gosub(context,exten,prio),
    GotoIf's ?context,s,1, and Goto(exten,label) inside the same context."""
    text = _code()
    contexts = re.findall(r"^\[([a-z-]+)\]", text, re.M)
    assert len(contexts) == len(set(contexts))
    extensions = _extensions()
    targets = re.findall(r"(?:Goto|Gosub)\(([a-z-]+),([^,()]+),[^,()]+[()]", text)
    targets += re.findall(r"\?([a-z-]+),(s),1\)", text)
    assert ("mailcall-refused", "s") in targets and ("mailcall-check-number", "s") in targets
    for context, exten in targets:
        assert exten in extensions.get(context, set()), (context, exten)
    for context, body in re.findall(r"^\[([a-z-]+)\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S):
        for exten, label in re.findall(r"Goto\(([^,()]+),([^,()]+)\)", body):
            assert exten in extensions[context], (context, exten)
            assert re.search(rf"n\({label}\)", body), (context, label)


def test_docs_call_the_subroutines_the_snippet_has():
    """Every Gosub the docs show targets an extension the snippet has (KIND being
    the placeholder for mailcall-voicemail's), with at most one argument."""
    extensions = _extensions()
    calls = re.findall(r"(Goto|Gosub)\((mailcall-[a-z-]+),([^,]+),1(?:\((.*?)\))?\)",
                       DOC.read_text())
    assert calls
    kinds = set()
    for app, context, exten, args in calls:
        if exten == "${EXTEN}":  # the form §4 warns against, quoted as such
            continue
        assert app == "Gosub", (app, context)
        if context == "mailcall-voicemail" and exten != "KIND":
            kinds.add(exten)
        assert exten in extensions[context] or (context, exten) == (
            "mailcall-voicemail", "KIND"), (context, exten)
        assert "," not in args, f"Gosub({context},{exten},1({args})): one argument only"
    assert {"s", "busy"} <= kinds
    assert extensions["mailcall-voicemail"] == {"s", "unavailable", "busy", "absence"}


def test_docs_spool_root_is_not_writable_by_asterisk():
    """§2: Asterisk's group may write rec/ and the greetings, not the spool root
    (serve.lock and the spool's state live there)."""
    section = _doc_section(2)
    modes = dict((path, mode) for mode, path in
                 re.findall(r"install -d -o mailcall -g asterisk -m (\d+) (\S+)", section))
    assert modes == {"/var/spool/mailcall": "2750", "/var/spool/mailcall/rec": "2770",
                     "/var/lib/mailcall/greetings": "2770"}
    assert "serve.lock" in section


def test_fallback_relies_on_mailcall_status_not_agistatus():
    route = _code().split("[mailcall-route]", 1)[1].split("\n[", 1)[0]
    condition = next(line for line in route.splitlines() if line.endswith("?fallback)"))
    assert '"${MAILCALL_STATUS}" = ""' in condition
    assert "AGISTATUS" not in condition


def test_fax_file_is_the_one_the_handler_accepts():
    code = _code()
    assert "Set(MAILCALL_FAXFILE=${MAILCALL_SPOOL_DIR}/rec/fax-${UNIQUEID}.tif)" in code
    assert "ReceiveFAX(${MAILCALL_FAXFILE})" in code
    assert code.count("AGI(${MAILCALL_URL}/fax,${MAILCALL_FAXTO},${MAILCALL_FAXFILE})") == 2
    runtime = SimpleNamespace(setting=lambda name: {"spool_dir": "/var/spool/mailcall"}[name])
    assert fax_handler.expected_fax_file(runtime, "1795887768.3") == Path(
        "/var/spool/mailcall/rec/fax-1795887768.3.tif")


def test_docs_sections_1_to_9_use_real_cli_options():
    text = DOC.read_text().split("\n## 10. ", 1)[0]
    assert "route --explain" not in text  # `mailcall route` needs --to
    for command in re.findall(r"mailcall route [^`\n]*", text):
        assert "--to" in command, command


def test_every_global_the_snippet_reads_is_in_the_docs_globals_block():
    """§4's [globals] example names each setting the snippet reads with GLOBAL(),
    the fallback's per-number MAILCALL_FALLBACK_<NUMBER> and MAILCALL_OPERATOR among them."""
    read = set(re.findall(r"\$\{GLOBAL\((MAILCALL_[A-Z_]+)", _code()))
    assert {"MAILCALL_AGI", "MAILCALL_SPOOL", "MAILCALL_FALLBACK", "MAILCALL_FALLBACK_",
            "MAILCALL_OPERATOR"} == read
    section = _doc_section(4)
    block = next(b for b in re.findall(r"```[a-z]*\n(.*?)```", section, re.S)
                 if "MAILCALL_AGI=" in b)
    for name in read:
        assert re.search(rf"^{name}[+0-9]*=", block, re.M), f"{name} not in docs §4 [globals]"
        assert re.search(rf"\b{name}", _header()), f"{name} not in the snippet's header"
