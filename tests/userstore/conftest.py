"""Shared fixtures: the bundled example policy and a store in a private folder, at a fixed time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcall.core.policy.load import load_policy
from mailcall.core.policy.model import Policy
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.support import EXAMPLE_POLICY as EXAMPLE

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 10:00 in Paris, a Tuesday


@pytest.fixture(scope="session")
def policy() -> Policy:
    return load_policy(EXAMPLE)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "users" / "store.sqlite"


@pytest.fixture
def backend(store_path: Path):
    b = SqliteStore(store_path)
    yield b
    b.close()


@pytest.fixture
def store(backend: SqliteStore) -> UserStore:
    return UserStore(backend, clock=lambda: NOW)
