"""Where the tests find the repository and the shared recorded material: defined here once.

``MAILCALL_SHARED`` names the shared folder (../shared/asterisk/README.md); by default it
stands beside the repository, as in the Makefile.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MAILCALL_SHARED", REPO.parent / "shared"))
TRACES = SHARED / "asterisk" / "traces"
MEDIA = SHARED / "asterisk" / "media"
EXAMPLE_POLICY = REPO / "core" / "data" / "small-company.toml"
"""The example policy: the one ``mailcall init`` writes and ``make serve`` runs."""
