"""How mailcall's helper processes live and die: with their parent, deaf to stop signals.

The delivery process and its build processes must never outlive ``mailcall
serve`` (a restarted server would run a second worker on the same spool), and
must not die mid-delivery when ``systemctl stop`` or Ctrl-C signals the whole
process group: ``mailcall serve`` tells them when to stop.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to kill this process when its parent goes, however it goes.

    (Strictly: when the parent's *thread* that started us ends; both the serving
    process and the delivery process start their children from their main
    thread, which lives as long as they do.) `parent`: the pid expected, to
    catch a parent that went before ``prctl`` took effect.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(0)


def ignore_stop_signals() -> None:
    """Leave SIGTERM, SIGINT and SIGHUP to the serving process.

    ``systemctl stop`` (without ``KillMode=mixed``) and Ctrl-C signal every
    process of the service at once; the delivery process and its build
    processes must finish their deliveries and stop when ``mailcall serve``
    tells them to, not die mid-delivery.
    """
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_IGN)


def how_it_ended(exitcode: int | None) -> str:
    """For the log: "was killed by SIGKILL (out of memory? see dmesg)", "exited with code 1"."""
    if exitcode is None:
        return "ended (exit status not known)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? see dmesg)" if exitcode == -signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"
