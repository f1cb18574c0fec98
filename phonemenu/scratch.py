"""The menu's files: each call's scratch folder, and the process's generated phrases.

Both are folders mailcall writes and Asterisk only reads (mode 2750 whatever
the umask: Asterisk's group passes and reads, never writes; docs/asterisk.md
section 2). A call's folder, ``{spool_dir}/menu/call-UNIQUEID``, holds its
speech and decoded audio and is removed when the call ends.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

from mailcall.agi.folders import TRAVERSE_DIR_MODE, shared_folder
from mailcall.agi.safety import safe_component


def reader_folder(path: Path) -> Path:
    """`path` made as agi/folders.py makes the folders it shares with Asterisk (parents
    2750), then narrowed to 2750 itself: Asterisk reads here and never writes."""
    if not path.is_dir():
        shared_folder(path)
        os.chmod(path, TRAVERSE_DIR_MODE)
    return path


class Scratch:
    def __init__(self, runtime: Any, uniqueid: str) -> None:
        self.runtime = runtime
        self.uniqueid = uniqueid
        self._folder: Path | None = None
        self._n = 0

    def menu_dir(self) -> Path:
        return Path(self.runtime.setting("spool_dir")) / "menu"

    def phrase_dir(self) -> Path:
        return self.menu_dir() / "phrases"

    async def folder(self) -> Path:
        """This call's folder for speech and decoded audio (made on first use)."""
        if self._folder is None:
            path = self.menu_dir() / ("call-" + safe_component(self.uniqueid))
            self._folder = await asyncio.get_running_loop().run_in_executor(
                None, reader_folder, path)
        return self._folder

    def next_name(self, what: str) -> str:
        """A name unique in this call (and, with the uniqueid, across calls)."""
        self._n += 1
        return f"{safe_component(self.uniqueid)}.{what}{self._n}"

    def next_number(self) -> int:
        self._n += 1
        return self._n

    async def remove(self) -> None:
        if self._folder is not None:
            folder, self._folder = self._folder, None
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: shutil.rmtree(folder, ignore_errors=True))
