"""The refined view (pure) and the serving process's overlay are two modules (issue 11):
the view does no I/O and knows no runtime; the overlay holds the service around it."""

from __future__ import annotations

import ast

from mailcall.userstore import overlay, refined_view
from tests.support import REPO

PURE = {"refined_policy", "effective_of", "EffectiveCache", "_Users", "_Absences",
        "_Resolver", "Lookup"}
SERVICE = {"StoreOverlay", "attach", "detach", "overlay_of", "decision_policy",
           "store_view", "changed_fields"}


def _defined(path: str) -> set[str]:
    tree = ast.parse((REPO / path).read_text())
    return {node.name for node in tree.body if isinstance(node, ast.ClassDef | ast.FunctionDef)} | {
        t.id for node in tree.body if isinstance(node, ast.Assign)
        for t in node.targets if isinstance(t, ast.Name)}


def test_each_name_is_defined_in_one_of_the_two():
    assert PURE <= _defined("userstore/refined_view.py")
    assert not PURE & _defined("userstore/overlay.py")
    assert SERVICE <= _defined("userstore/overlay.py")
    assert not SERVICE & _defined("userstore/refined_view.py")
    assert overlay.refined_policy is refined_view.refined_policy  # used, not copied


def test_the_view_is_pure():
    tree = ast.parse((REPO / "userstore/refined_view.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not imported & {"logging", "time", "pathlib", "mailcall.core.host.plugin_manager",
                           "mailcall.userstore.sqlite_store", "mailcall.userstore.index"}
