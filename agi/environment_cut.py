"""Cutting an ``agi_*`` block whose names repeat: where each run of Asterisk's own lines
stands, and where each value begins.

The rules are the reader's (agi/environment_reader.py, :class:`EnvironmentBlockReader`
says them in full); this is the search that applies them once a blank line may end
the block, over the names and values the reader kept line by line. A block in
Asterisk's exact order never comes here (:func:`mailcall.agi.environment_layout.in_order`).
"""

from __future__ import annotations

from .environment_layout import ARG_COPY, GROUPS, LAST_WINS, RUN_FORMS, RUNS


def _places(keys: list[str | None], name: str, start: int = 0) -> list[int]:
    """Where `name` stands in `keys`, from `start` on (C-speed scans, no loop per line)."""
    out: list[int] = []
    at = start - 1
    for _ in range(keys.count(name)):
        try:
            at = keys.index(name, at + 1)
        except ValueError:
            break
        out.append(at)
    return out


def cut(keys: list[str | None], lines: list[str], values: list[str]
        ) -> tuple[list[int], list[str]] | None:
    """Where each run of :data:`RUNS` stands in a block's lines, with what was uncertain;
    None when they are no whole block (yet). The search of
    :meth:`mailcall.agi.environment_reader.EnvironmentBlockReader._read`."""
    n = len(keys)

    def fits(index: int, p: int) -> bool:
        """Run `index` can stand at `p`: its lines as Asterisk writes them, then the next."""
        end = p + len(RUNS[index])
        if end > n or not RUN_FORMS[index]("\n".join(lines[p:end])):
            return False
        if index == len(GROUPS):  # agi_threadid: the arguments or the end follow
            return end == n or keys[end] == "agi_arg_1"
        return end < n and keys[end] == GROUPS[index][0]

    def room(index: int, p: int) -> int | None:
        """Lowest place for the run after run `index` at `p`: its group comes between."""
        begin = p + len(RUNS[index])
        group = GROUPS[index]
        if len(group) == 1:
            return begin + 1
        second = _places(keys, group[1], begin + 1)
        return second[0] + 1 if second else None

    if keys[1] == "agi_request":
        low: int | None = 2
    else:
        request = _places(keys, "agi_request", 2)
        low = request[0] + 1 if request else None
    if low is None:
        return None
    # Backwards: the places of each run that leave room for all the later ones.
    viable: list[list[int]] = [[] for _ in RUNS]
    for index in range(len(RUNS) - 1, -1, -1):
        later = max(viable[index + 1], default=-1) if index + 1 < len(RUNS) else None
        viable[index] = [
            p for p in _places(keys, RUNS[index][0], 2) if fits(index, p)
            and (later is None or ((r := room(index, p)) is not None and later >= r))]
    notes: list[str] = []
    chosen: list[int] = []
    for index, last_wins in enumerate(LAST_WINS):
        places = [p for p in viable[index] if p >= low]  # type: ignore[operator]
        if not places:
            return None
        p = places[-1] if last_wins else places[0]
        run = RUNS[index]
        if len(places) > 1 and len({tuple(values[q:q + len(run)]) for q in places}) > 1:
            notes.append(f"{run[0]} is written more than once (a caller value holds "
                         f"copies of Asterisk's lines): the {'last' if last_wins else 'first'}"
                         f" copy was taken as Asterisk's")
        chosen.append(p)
        if index < len(GROUPS):
            low = room(index, p)
    return chosen, notes


def values_at(keys: list[str | None], lines: list[str], values: list[str],
              chosen: list[int], notes: list[str]) -> dict[str, str]:
    """The variables, once `chosen` says where each run of Asterisk's lines stands."""
    n = len(keys)
    starts: list[tuple[str, int]] = [("agi_network", 0)]
    if keys[1] == "agi_network_script":
        starts.append(("agi_network_script", 1))
        starts.append(("agi_request", request_start(keys, lines, values, chosen[0], notes)))
    else:
        starts.append(("agi_request", 1))
    unknown: list[str] = []
    for index, p in enumerate(chosen):
        run = RUNS[index]
        starts.extend((key, p + i) for i, key in enumerate(run))
        if index == len(GROUPS):
            break
        group = GROUPS[index]
        begin = p + len(run)
        starts.append((group[0], begin))
        if len(group) == 2:
            second = _places(keys[:chosen[index + 1]], group[1], begin + 1)
            starts.append((group[1], second[0]))
            if len(second) > 1:
                unknown.extend(group)
                notes.append(f"{group[0]} or {group[1]} holds a copy of the line "
                             f"{group[1]}: where one ends and the other begins is a "
                             "guess, so both are taken as unknown")
    arg = 0
    copied = False
    for c in range(chosen[-1] + 1, n):
        if keys[c] == f"agi_arg_{arg + 1}":
            arg += 1
            starts.append((f"agi_arg_{arg}", c))
        elif ARG_COPY(lines[c]):
            copied = True
    if copied:
        notes.append("an AGI argument holds a copy of an agi_arg_ line: the dialplan "
                     "passed text with a line break, and the arguments may be cut in "
                     "the wrong place")
    if len(starts) == n:  # one line each: each value is its line's
        env = dict(zip([key for key, _ in starts], values, strict=True))
    else:  # a value's first line, then its other lines as sent
        env = {key: values[at] if end == at + 1 else "\n".join([values[at], *lines[at + 1:end]])
               for (key, at), (_, end) in zip(starts, [*starts[1:], ("", n)], strict=True)}
    for key in unknown:
        env[key] = "unknown"
    return env


def request_start(keys: list[str | None], lines: list[str], values: list[str],
                  stop: int, notes: list[str]) -> int:
    """Where agi_request begins when agi_network_script holds a copy of its line.

    Asterisk writes the URL, which ends in ``/`` and the script: the cut that
    keeps that true is the real one; when none or several do, the first.
    """
    cands = _places(keys[:stop], "agi_request", 2)
    if len(cands) == 1:
        return cands[0]
    kept = []
    for c in cands:
        script = "\n".join([values[1], *lines[2:c]])
        url = "\n".join([values[c], *lines[c + 1:stop]])
        if url.endswith("/" + script):
            kept.append(c)
    if len(kept) != 1:
        notes.append("agi_network_script holds a copy of the line agi_request: the "
                     "AGI URL in the dialplan carries text with a line break, and "
                     "the script name may be cut in the wrong place")
    return (kept or cands)[0]
