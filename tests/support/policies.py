"""The one example policy the harnesses and benchmarks start from, with their changes shown.

Each harness used to carry its own copy of Stock Inox, and the copies drifted from
the example ``mailcall init`` writes (core/data/small-company.toml). Now each one
names only what it changes, so a reader sees at once how the policy under test
differs from the documented example.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from typing import Any

import tomli_w

from tests.support import EXAMPLE_POLICY

DROP = object()
"""A change that removes the key (``{"users": {"emma": {"mobile": DROP}}}``)."""


def _merged(base: dict[str, Any], changes: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        if value is DROP:
            if key not in out:
                raise KeyError(f"example policy has no {where}{key} to drop")
            del out[key]
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def example_policy(*changes: Mapping[str, Any]) -> dict[str, Any]:
    """The example policy as TOML data, each of `changes` merged in turn (tables merge,
    values replace)."""
    with EXAMPLE_POLICY.open("rb") as f:
        data = tomllib.load(f)
    for change in changes:
        data = _merged(data, change)
    return data


def example_policy_text(*changes: Mapping[str, Any]) -> str:
    """:func:`example_policy` as policy text, for ``compile_text`` or a policy file."""
    return tomli_w.dumps(example_policy(*changes))


SMALL_ORGANISATION = {"name": "Test Org", "domain": "example.test", "timezone": "Europe/Paris",
                      "language": "fr"}
"""The organisation of the small policies the deposit and notification harnesses build."""


def small_policy_text(address: str, *changes: Mapping[str, Any], method: str = "lmtp") -> str:
    """A small policy ("Test Org", delivery by `method` to `address`) as policy text, each
    of `changes` (profiles, users, channels) merged in turn as :func:`example_policy` does."""
    data: dict[str, Any] = {"organisation": dict(SMALL_ORGANISATION),
                            "delivery": {"method": method, "address": address}}
    for change in changes:
        data = _merged(data, change)
    return tomli_w.dumps(data)
