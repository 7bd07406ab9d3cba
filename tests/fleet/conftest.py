"""Fixtures for the fleet recorder tests: a fresh PostgreSQL database per test on the session's
server, and a real mosquitto per test."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sdk.fleet.broker import LocalBroker


@pytest.fixture
def pg_db(postgres_url: str, request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of its own for this test."""
    import psycopg

    name = "t_" + re.sub(r"\W", "_", request.node.name).lower()[:50]
    with psycopg.connect(postgres_url, autocommit=True) as c:
        c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {name}")
    return postgres_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def broker() -> Iterator[LocalBroker]:
    if shutil.which("mosquitto") is None and not Path("/usr/sbin/mosquitto").exists():
        pytest.skip("mosquitto is not installed (run .ci/system-deps.sh test)")
    with LocalBroker() as b:
        yield b
