"""Recording a user's greeting by phone: the one sequence for the greeting script and
the mailbox's options.

Recorded under a hidden temporary name in the greeting's own folder, then renamed
over the old one (:mod:`.folders`), so a call arriving meanwhile plays the old
greeting or the new one, never half a file. A recording cut by a hang-up, a lost
connection or mailcall stopping is thrown away (nothing else would ever clean the
temporary file up), and the old greeting stays.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .folders import commit_recording, discard_recording, greeting_path, prepare_recording
from .session import AgiSession

MAX_GREETING_MS = 60_000
SILENCE_S = 3
"""Seconds of silence that end a greeting (as a reply recorded in the mailbox)."""


async def record_greeting(session: AgiSession, greetings_dir: Path | str, user_id: str,
                          kind: str) -> bool:
    """Record `user_id`'s greeting `kind` after the beep (``#`` ends it); True when the new
    one replaced the old. Which kinds a user may record is the caller's to check."""
    loop = asyncio.get_running_loop()
    final = greeting_path(Path(greetings_dir), user_id, kind)
    tmp = await loop.run_in_executor(None, prepare_recording, final, session.env.uniqueid)
    try:
        rec = await session.record_file(str(tmp), "wav", "#", MAX_GREETING_MS, beep=True,
                                        silence_s=SILENCE_S)
        saved = rec.outcome in ("dtmf", "timeout") and await loop.run_in_executor(
            None, commit_recording, tmp, final)
    except BaseException:
        # Connection lost, or cancelled (mailcall stopping): right here, not in the
        # executor, since a cancelled task cannot count on its next await. One unlink.
        discard_recording(tmp)
        raise
    if not saved:
        await loop.run_in_executor(None, discard_recording, tmp)
    return bool(saved)
