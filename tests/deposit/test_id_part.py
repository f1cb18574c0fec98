"""One rule for the caller-side part of a Message-ID and of a spool id (deposit/headers.py)."""

from __future__ import annotations

import ast

from mailcall.deposit import headers
from tests.support import REPO


def test_one_rule_cuts_both_ids():
    hostile = "1701.5\r\nBcc: x@evil/../" + "9" * 60
    part = headers.id_part(hostile)
    assert part == ("1701.5Bccxevil.." + "9" * 60)[: headers.ID_PART_MAX]
    assert f".{part}." in headers.message_id("voice", "alice", hostile, "example.test",
                                             key=b"k" * 32)
    # spool.py uses the same function, not a copy of the pattern and the cut.
    spool = (REPO / "deposit/spool.py").read_text()
    assert "_ID_SAFE" not in spool and "[:40]" not in spool
    names = {a.name for n in ast.walk(ast.parse(spool)) if isinstance(n, ast.ImportFrom)
             and n.module == "headers" for a in n.names}
    assert "id_part" in names
