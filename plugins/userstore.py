"""Built-in plugin: the user store's commands for IT (docs/user-settings.md).

``mailcall user show|set|clear|history`` and ``mailcall absence set|clear``.
Routing does not read the store yet: the next step wires
:class:`mailcall.userstore.index.RefinementIndex` into the call and mail plans.
"""

from __future__ import annotations

import argparse

from mailcall.core.hookspecs import hookimpl
from mailcall.userstore import commands


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    commands.register(subparsers)
