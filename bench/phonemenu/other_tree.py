"""Run bench_menu.py (this tree's bench and scripted callers) against another tree's mailcall.

Why: before/after figures must come from the same bench, the same machine and the same
hour. ``git worktree add /tmp/old-tree HEAD`` gives the code before a change; this points
the ``mailcall`` package (an editable install mapping ``mailcall.X`` to this tree's
folders) at that tree's folders instead, then runs this tree's bench. Remove the worktree
afterwards (``git worktree remove /tmp/old-tree``).

Usage: .venv/bin/python bench/phonemenu/other_tree.py TREE [bench_menu.py options]
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]


def main() -> None:
    if len(sys.argv) < 2 or not (Path(sys.argv[1]) / "phonemenu").is_dir():
        sys.exit("usage: other_tree.py TREE [bench options]  (TREE: a mailcall checkout, "
                 "e.g. from 'git worktree add /tmp/old-tree HEAD')")
    tree = Path(sys.argv[1]).resolve()
    if any(name.startswith("mailcall") for name in sys.modules):
        sys.exit("mailcall was imported before the tree could be chosen")
    import __editable___mailcall_0_1_0_finder as finder  # the venv's editable install

    for name, folder in list(finder.MAPPING.items()):
        finder.MAPPING[name] = str(tree / Path(folder).name)
    sys.argv = [str(HERE.with_name("bench_menu.py")), *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main()
