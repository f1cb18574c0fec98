"""Listening on a UNIX socket path that a previous run may have left behind.

A socket file left by a crash is replaced; one that still answers belongs to a
running ``mailcall serve`` and is never taken over (two services would each
believe they own the lamps).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

MAX_PATH = 107
"""Longest AF_UNIX path Linux accepts (sun_path is 108 bytes with its NUL)."""

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def listen(path: Path, handler: Handler, *, mode: int, backlog: int,
                 what: str) -> asyncio.AbstractServer:
    """Serve `handler` on `path` with permissions `mode`; `what` names the key that sets it."""
    if len(os.fsencode(path)) > MAX_PATH:
        raise OSError(f"{path}: a UNIX socket path may be at most {MAX_PATH} bytes; set a "
                      f"shorter {what} in mwi.toml (docs/mwi.md)")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        if answers(path):
            raise OSError(f"{path}: another process already serves this socket "
                          f"(a second mailcall serve?)")
        path.unlink()
    elif path.exists() or path.is_symlink():
        raise OSError(f"{path} exists and is not a socket: mailcall does not remove it; "
                      f"move it away or set another {what} in mwi.toml")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    bound = False
    try:
        sock.bind(str(path))
        bound = True
        # Bound but not listening: nobody can connect before the mode is set (no umask
        # change, which would be process-wide and race other threads).
        os.chmod(path, mode)
        return await asyncio.start_unix_server(handler, sock=sock, backlog=backlog)
    except BaseException:
        sock.close()
        if bound:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        raise


async def close(server: asyncio.AbstractServer | None, path: Path) -> None:
    if server is None:
        return
    server.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), 1.0)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.2)
        try:
            s.connect(str(path))
        except PermissionError:
            return True  # another user's live socket: not ours to replace
        except (BlockingIOError, TimeoutError):
            return True  # its backlog is full (a flood of triggers): very much alive
        except OSError:
            return False
        return True
