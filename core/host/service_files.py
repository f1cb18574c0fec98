"""Where a service finds its own settings file: named by an environment variable, else
beside the policy file (mwi.toml, web.toml, phone-menu.toml).

Kept out of the policy on purpose: such files name secrets and addresses only the
machine running ``mailcall serve`` needs. None means "not configured": the service is
off, and says so once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mailcall.core.host.unusable import UnusableService

S = TypeVar("S")


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


def service_from_file(name: str, path: Path | None, *, off: str, log: logging.Logger,
                      load: Callable[[Path], S], error: type[Exception],
                      make: Callable[[S], Any]) -> list[Any]:
    """What a service configured by its own file offers to ``mailcall_services``.

    No file (`path` None): nothing, and `off` logged once (why the service is off and
    where to read about it). A file `load` refuses with `error`: an
    :class:`UnusableService` whose start stops ``serve`` with the file, line and key.
    Otherwise ``[make(settings)]``.
    """
    if path is None:
        log.info("%s: %s", name, off)
        return []
    try:
        settings = load(path)
    except error as exc:
        return [UnusableService(name, str(exc))]
    return [make(settings)]
