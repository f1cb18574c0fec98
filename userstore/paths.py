"""Where the user store lives.

In mailcall's state directory: the folder that holds ``[server] greetings_dir``
(``/var/lib/mailcall`` by default), in a ``users/`` folder of its own made 0700
(the greetings must stay readable by Asterisk; the store holds PIN hashes).
Not under the spool: a spool is for work in transit, this is data to back up.
``$MAILCALL_USER_STORE`` or the caller's path (``--store``) wins, for hosts
that keep state elsewhere and for tests.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from mailcall.core.policy.model import ServerSettings

ENV = "MAILCALL_USER_STORE"
FOLDER, FILE_NAME = "users", "store.sqlite"


def store_path(server: ServerSettings | None = None, given: str | os.PathLike[str] | None = None
               ) -> Path:
    """`given`, else ``$MAILCALL_USER_STORE``, else ``<state dir>/users/store.sqlite``."""
    if given:
        return Path(given)
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    greetings = Path((server or ServerSettings()).greetings_dir)
    return greetings.parent / FOLDER / FILE_NAME


def runtime_store_path(runtime: Any) -> Path:
    """The store a running mailcall uses: ``user_store`` override, ``$MAILCALL_USER_STORE``,
    else ``users/store.sqlite`` beside the greetings folder in use (``--greetings-dir``)."""
    server = dataclasses.replace(runtime.policy.server,
                                 greetings_dir=str(runtime.setting("greetings_dir")))
    return store_path(server, runtime.overrides.get("user_store"))
