from __future__ import annotations

from pathlib import Path

import pytest

from mailcall.core.policy.load import load_policy

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "contrib" / "policies" / "small-company.toml"
POLICIES = Path(__file__).parent / "policies"


@pytest.fixture(scope="session")
def example():
    return load_policy(EXAMPLE)
