"""Renders the hook reference of docs/plugins.md from the hook specifications.

The docstrings in hookspecs.py are the one source; `python -m
mailcall.core.host.hookdocs docs/plugins.md` rewrites the reference part of the
page, and a test fails when the page and the specifications disagree.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from mailcall.core import hookspecs

MARKER = "## Hooks\n"


def signature(name: str) -> str:
    return f"{name}{inspect.signature(getattr(hookspecs, name))}".replace("'", "")


def hook_names() -> list[str]:
    return sorted(n for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
                  if n.startswith("mailcall_"))


def render() -> str:
    out = [MARKER, "Each hook is declared, and documented, in `core/hookspecs.py`; this part of",
           "the page is generated from it",
           "(`python -m mailcall.core.host.hookdocs docs/plugins.md`).",
           ""]
    for name in hook_names():
        out += [f"### `{signature(name)}`", "", inspect.getdoc(getattr(hookspecs, name)), ""]
    return "\n".join(out)


def rewrite(page: Path) -> None:
    text = page.read_text()
    head = text[: text.index(MARKER)] if MARKER in text else text + "\n"
    page.write_text(head + render())


if __name__ == "__main__":
    rewrite(Path(sys.argv[1]))
