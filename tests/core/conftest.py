from __future__ import annotations

from pathlib import Path

import pytest

from mailcall.core.policy.load import load_policy
from tests.support import EXAMPLE_POLICY as EXAMPLE
from tests.support import REPO  # noqa: F401 - the tests of this folder import it from here

POLICIES = Path(__file__).parent / "policies"


@pytest.fixture(scope="session")
def example():
    return load_policy(EXAMPLE)
