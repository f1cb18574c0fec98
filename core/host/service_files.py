"""Where a service finds its own settings file: named by an environment variable, else
beside the policy file (mwi.toml, web.toml, phone-menu.toml).

Kept out of the policy on purpose: such files name secrets and addresses only the
machine running ``mailcall serve`` needs. None means "not configured": the service is
off, and says so once.
"""

from __future__ import annotations

import os
from pathlib import Path


def settings_file(policy_path: Path | None, name: str, env: str) -> Path | None:
    """``$env`` if set, else `name` beside the policy when it exists, else None."""
    named = os.environ.get(env)
    if named:
        return Path(named)
    if policy_path is not None:
        beside = Path(policy_path).with_name(name)
        if beside.exists():
            return beside
    return None
