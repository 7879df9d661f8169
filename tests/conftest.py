"""Shared fixtures: a real PostgreSQL for every test that needs one.

The server is the embedded one (started in a temporary folder for the session) unless
``AMOCA_TEST_DATABASE_URL`` names a server we may create databases on. Every test gets
its own database, copied from a template that holds every migration, so tests are
isolated from each other and cost a file copy, not a migration run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import conninfo, sql

from indexer.db import embedded, migrations
from indexer.db.connection import connect
from tests.support.paths import shared_dir


def _with_database(url: str, name: str) -> str:
    params = conninfo.conninfo_to_dict(url)
    params["dbname"] = name
    return conninfo.make_conninfo(**params)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    path = shared_dir() / "fixtures"
    assert path.is_dir(), f"shared fixtures not found at {path}"
    return path


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL to a real server, embedded unless AMOCA_TEST_DATABASE_URL is set.

    The embedded server's folder is its own, not under pytest's temporary folders: pytest
    deletes all but the newest three sessions' folders when a session starts, so a fourth
    test run started meanwhile on the machine deleted the data of this one's server, live
    (every later test: "server closed the connection unexpectedly")."""
    external = os.environ.get("AMOCA_TEST_DATABASE_URL")
    if external:
        yield external
        return
    folder = Path(tempfile.mkdtemp(prefix="amoca-test-pg-"))
    data_dir = folder / "pg"
    try:
        server = embedded.start(data_dir, durable=False)
        try:
            yield server.url()
        finally:
            embedded.stop(data_dir, mode="immediate")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _create_database(admin_url: str, name: str, template: str | None = None) -> None:
    with connect(admin_url) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(query)


def _drop_database(admin_url: str, name: str) -> None:
    with connect(admin_url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def migrated_template(pg_admin_url: str) -> Iterator[str]:
    """The name of a database holding every migration in sql/, used as a template."""
    name = f"amoca_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    _create_database(pg_admin_url, name)
    try:
        with connect(_with_database(pg_admin_url, name)) as conn:
            migrations.migrate(conn)
        yield name
    finally:
        _drop_database(pg_admin_url, name)


@pytest.fixture
def empty_db_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database with nothing in it."""
    name = f"amoca_empty_{uuid.uuid4().hex[:12]}"
    _create_database(pg_admin_url, name)
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        _drop_database(pg_admin_url, name)


@pytest.fixture
def db_url(pg_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh database with every migration applied, for this test only."""
    name = f"amoca_test_{uuid.uuid4().hex[:12]}"
    _create_database(pg_admin_url, name, template=migrated_template)
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        _drop_database(pg_admin_url, name)


@pytest.fixture
def conn(db_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit connection to this test's migrated database."""
    with psycopg.connect(db_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def indexer_login_url(db_url: str) -> Iterator[str]:
    """A URL that logs in as a fresh role whose only privilege is membership of amoca_indexer."""
    name = f"amoca_indexer_login_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE amoca_indexer").format(sql.Identifier(name)))
    params = conninfo.conninfo_to_dict(db_url)
    params["user"] = name
    try:
        yield conninfo.make_conninfo(**params)
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))
