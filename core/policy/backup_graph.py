"""Who stands in for whom: every backup and overflow names a defined user or @group,
and no chain of them loops.

Routing follows the backups of an unreachable backup, and group overflows,
transitively: a loop there would ring the same people again and again. Loops are the
strongly connected parts of that graph, found in one pass.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from mailcall.core.policy.model import Group, User
from mailcall.core.policy.value_checks import Checker


def loop_text(names: Sequence[str]) -> str:
    """`a → b → a`, for a loop in a message; a long one keeps its first 5 and last 4 names."""
    if len(names) > 12:
        names = [*names[:5], f"… {len(names) - 9} more", *names[-4:]]
    return " → ".join(names)


def is_target(ref: Any, users: frozenset[str], groups: frozenset[str]) -> bool:
    """`ref` names one of `users`, or one of `groups` written ``@name``."""
    if not isinstance(ref, str):
        return False
    return ref[1:] in groups if ref.startswith("@") else ref in users


def check_references(check: Checker, users: dict[str, User], groups: dict[str, Group],
                     user_ids: frozenset[str], group_ids: frozenset[str]) -> None:
    """Every backup and overflow names someone else who exists, and no chain of them loops.

    `user_ids` and `group_ids` are every id written, valid or not, so that one bad
    field of a user does not also make it "not defined" wherever it is named.
    """
    for uid, user in users.items():
        for i, ref in enumerate(user.backups):
            path = ("users", uid, "backups", str(i))
            if ref == uid:
                check.error(path, "a user cannot be their own backup")
            elif not is_target(ref, user_ids, group_ids):
                check.error(path, f"'{ref}' is not a defined user or @group (groups are "
                            "written with '@', e.g. \"@reception\")")
    for gid, group in groups.items():
        if group.overflow is not None:
            path = ("groups", gid, "overflow")
            if not is_target(group.overflow, user_ids, group_ids):
                check.error(path, f"'{group.overflow}' is not a defined user or @group")
            elif group.overflow == f"@{gid}":
                check.error(path, "a group cannot overflow to itself")
    # Routing follows backups of an unreachable backup, and group overflows, transitively:
    # a loop there would ring the same people again and again. Loops are the strongly
    # connected parts of that graph, found in one pass: walking every backup path instead
    # takes exponential time (32 users each naming the next two: seconds; 40: minutes).
    edges: dict[str, tuple[str, ...]] = {u: tuple(users[u].backups) for u in users}
    edges.update({f"@{g}": (groups[g].overflow,) if groups[g].overflow else () for g in groups})
    for tangle in _strongly_connected(edges):
        start = tangle[0]
        cycle = _shortest_cycle(start, edges, frozenset(tangle))
        others = [n for n in tangle if n not in cycle]
        also = (f" (also in this loop: {', '.join(others[:10])}"
                f"{f' and {len(others) - 10} more' if len(others) > 10 else ''})" if others else "")
        where = (("users", start, "backups") if not start.startswith("@")
                 else ("groups", start[1:], "overflow"))
        check.error(where, f"backup chain loops: {loop_text((*cycle, start))}{also}; "
                    "end the chain in a group or a user without backups")


def _strongly_connected(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The parts of the graph where each node reaches every other (Tarjan), of 2 nodes or more.

    Iterative, so that no chain is too long; each part and the parts themselves are in
    the order of `edges`, so the report names the loop where the policy file first has it.
    Edges to nodes that are not keys of `edges` (undefined names) are ignored.
    """
    order = {n: i for i, n in enumerate(edges)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(edges[root]))]
        while work:
            node, todo = work[-1]
            for nxt in todo:
                if nxt not in edges:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    part = []
                    while True:
                        n = stack.pop()
                        on_stack.discard(n)
                        part.append(n)
                        if n == node:
                            break
                    if len(part) > 1:
                        parts.append(sorted(part, key=order.__getitem__))
    return sorted(parts, key=lambda part: order[part[0]])


def _shortest_cycle(start: str, edges: Mapping[str, Sequence[str]],
                    members: frozenset[str]) -> list[str]:
    """The shortest way from `start` back to it inside `members` (start first, not repeated)."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges[node]:
            if nxt == start and node != start:
                path = [node]
                while (back := came_from[path[-1]]) is not None:
                    path.append(back)
                return path[::-1]
            if nxt in members and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [start]
