"""The daemon runs as a login that holds nothing but the `amoca_indexer` role, and the
database still reaches the ground truth: least privilege is enough to do the whole job."""

from __future__ import annotations

import psycopg

from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet.workload import WorkloadConfig, run_workload
from indexer.rankings import may_vacuum_board, vacuum_board
from tests.e2e.harness import (
    database_rows,
    differences,
    eventually,
    expected_rows,
    running_daemon,
    stats_consistent,
)

CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=6, seed=29)


async def test_the_daemon_needs_only_the_indexer_role(db_url: str, indexer_login_url: str) -> None:
    with psycopg.connect(indexer_login_url) as conn:  # the login really is unprivileged
        role = conn.execute("SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user")
        assert role.fetchone() == (False, False)
    async with Localnet(CLUSTER) as net, \
            running_daemon(indexer_login_url, net.http_url, net.ws_url) as daemon:
        await daemon.wait_logged("ops_listening")
        summary = await run_workload(WorkloadConfig(
            rpc_url=net.http_url, rate=200, count=80, agents=4, users=6, seed=31, database_url=db_url))
        expected = expected_rows(summary.truth)
        await eventually(lambda: differences(expected, database_rows(db_url)), deadline=60,
                         what="database equal to the ground truth")
        assert stats_consistent(db_url)
        await daemon.wait_logged("rankings_refreshed")
        assert await daemon.stop() == 0, daemon.tail()
    assert not any('"level": "error"' in line for line in daemon.log), daemon.tail()


async def test_the_indexer_role_may_vacuum_the_board_where_the_server_allows(indexer_login_url: str) -> None:
    """PostgreSQL 17+ has the MAINTAIN privilege (granted by sql/0014); before it only the
    owner may VACUUM, and the runner leaves the board to autovacuum."""
    async with await psycopg.AsyncConnection.connect(indexer_login_url, autocommit=True) as conn:
        allowed = await may_vacuum_board(conn)
        assert allowed == (conn.info.server_version >= 170000)
        if allowed:
            assert await vacuum_board(conn) >= 0
