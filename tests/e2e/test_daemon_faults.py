"""The daemon end to end under one fault at a time: the provider rate-limiting and failing,
every websocket dropped, a confirmed slot forked away, PostgreSQL restarted, the database
connections cut, a failover to a standby lacking the last commits, a backend crash under
asynchronous commits. The daemon is a real process, the cluster and PostgreSQL real servers;
after the run the database must equal the ground truth -- every row, status and stat --
and no dead letter may have been written."""

from __future__ import annotations

import asyncio
import os
import signal
from functools import partial
from pathlib import Path

import psycopg
from psycopg import conninfo

from indexer.daemon import shard_lock_key
from indexer.db import embedded
from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet.workload import WorkloadConfig, WorkloadSummary, run_workload
from indexer.registry import Shard
from indexer.sink import WRITER_APPLICATION_NAME
from tests.e2e.harness import (
    DaemonProcess,
    after_fork,
    database_rows,
    dead_letters,
    eventually,
    eventually_reaches,
    expected_rows,
    fault,
    row_count,
    running_daemon,
    truth_differences,
)
from tests.support.proxy import tcp_proxy
from tests.support.servers import own_server, promoted_copy

CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=6, seed=5)


def _traffic(net: Localnet, url: str, *, seed: int, rate: float, count: int) -> asyncio.Task[WorkloadSummary]:
    """The AMOCA workload (4 agents, 6 users) sending in the background while a fault hits."""
    return asyncio.create_task(run_workload(WorkloadConfig(
        rpc_url=net.http_url, rate=rate, count=count, agents=4, users=6, seed=seed, database_url=url)))


def _at_least_rows(url: str, count: int) -> list[str]:
    have = row_count(url)
    return [] if have >= count else [f"{have} rows indexed, waiting for {count}"]


async def _http_errors_felt(net: Localnet, daemon: DaemonProcess, status: int, outcome: str,
                            **options: float) -> None:
    """Answer a fraction of HTTP requests with ``status`` until the daemon has met a few of
    them (its RPC metric counts ``outcome``), then clear the fault."""
    requests = "amoca_indexer_rpc_requests_total"
    before = await daemon.metric_total(requests, outcome=outcome)
    await fault(net.admin_url, "http-errors", status=status, seconds=60, **options)
    await eventually_reaches(lambda: daemon.metric_total(requests, outcome=outcome), before + 5,
                             deadline=60, what=f"requests of the daemon answered {status}")
    await fault(net.admin_url, "clear")


async def test_rate_limits_then_server_errors_during_the_run_lose_nothing(db_url: str) -> None:
    async with Localnet(CLUSTER) as net, running_daemon(db_url, net.http_url, net.ws_url) as daemon:
        await daemon.wait_logged("ops_listening")
        workload = _traffic(net, db_url, seed=31, rate=40, count=120)
        await eventually(lambda: _at_least_rows(db_url, 15), deadline=60, what="traffic indexed")
        # Half the HTTP requests answer 429 with Retry-After, then half answer 503 -- the
        # daemon's and the workload's alike -- while the traffic goes on.
        await _http_errors_felt(net, daemon, 429, "RpcRateLimited", fraction=0.5, retry_after=0.3)
        await _http_errors_felt(net, daemon, 503, "RpcUnavailable", fraction=0.5)
        summary = await workload
        await eventually(lambda: truth_differences(db_url, summary.truth), deadline=60,
                         what="database equal to the ground truth after 429s and 503s")
        assert dead_letters(db_url) == []
        assert await daemon.stop() == 0, daemon.tail()


async def test_every_websocket_dropped_repeatedly_loses_nothing(db_url: str) -> None:
    # No reconciliation poll: only the resubscribe's gap-fill can recover what the drops lose.
    async with Localnet(CLUSTER) as net, running_daemon(db_url, net.http_url, net.ws_url,
                                                        AMOCA_RECONCILE_INTERVAL="3600") as daemon:
        await daemon.wait_logged("ops_listening")
        workload = _traffic(net, db_url, seed=32, rate=60, count=120)
        reconnects = "amoca_indexer_ws_reconnects_total"
        for drop in range(1, 4):
            await eventually(partial(_at_least_rows, db_url, 20 * drop), deadline=60,
                             what=f"traffic indexed before drop {drop}")
            await eventually(lambda: [] if any(net.pubsub.by_mention.values()) else ["no subscription"],
                             deadline=30, what=f"the daemon subscribed before drop {drop}")
            if drop == 2:  # this time the provider also refuses reconnections for a while
                await fault(net.admin_url, "refuse", seconds=1.0)
            assert await fault(net.admin_url, "drop-websockets") > 0
            await eventually_reaches(lambda: daemon.metric_total(reconnects), drop, deadline=30,
                                     what="websocket reconnects")
        summary = await workload
        await eventually(lambda: truth_differences(db_url, summary.truth), deadline=60,
                         what="database equal to the ground truth after dropped websockets")
        assert dead_letters(db_url) == []
        assert await daemon.stop() == 0, daemon.tail()


# Finality 150 slots (6 s) away: the forked slot is still unfinalized when the test forks it,
# even on a busy machine. A dropped row fails 150 slots (the blockhash expiry) later still.
FORK_CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=150, seed=6)


def _forkable_slot(url: str, summary: WorkloadSummary, finalized: int) -> int:
    """A slot in the middle of the workload's traffic that is not finalized yet."""
    signatures = sorted({r["signature"] for r in summary.truth})
    with psycopg.connect(url) as conn:
        slots = sorted({slot for (slot,) in conn.execute(
            "SELECT slot FROM transactions WHERE transaction_signature = ANY(%s)",
            (signatures,)).fetchall()})
    unfinalized = [s for s in slots if s > finalized]
    assert unfinalized, f"every slot of the traffic is finalized (finalized slot {finalized})"
    return int(unfinalized[len(unfinalized) // 2])


async def test_forked_slot_rows_end_failed_dropped(db_url: str) -> None:
    async with Localnet(FORK_CLUSTER) as net, running_daemon(db_url, net.http_url, net.ws_url) as daemon:
        await daemon.wait_logged("ops_listening")
        first = await run_workload(WorkloadConfig(
            rpc_url=net.http_url, rate=150, count=60, agents=3, users=5, seed=41, database_url=db_url))
        # Every row of the traffic is indexed (pending: nothing is finalized yet), then forked.
        keys = set(expected_rows(first.truth))
        await eventually(lambda: [f"missing {k}" for k in keys - set(database_rows(db_url))],
                         deadline=30, what="traffic indexed before the fork")
        slot = _forkable_slot(db_url, first, net.ledger.slot_at("finalized"))
        forked = await fault(net.admin_url, "fork", slot=slot)
        dropped = set(forked["signatures"])
        assert dropped & {r["signature"] for r in first.truth}, forked
        # Traffic goes on after the fork (new agents too).
        second = await run_workload(WorkloadConfig(
            rpc_url=net.http_url, rate=150, count=40, agents=2, users=4, seed=42, database_url=db_url))
        truth = [*after_fork(first.truth, dropped), *second.truth]
        await eventually(lambda: truth_differences(db_url, truth), deadline=90,
                         what="database equal to the ground truth after the fork")
        # Each row the fork dropped says why (those that failed on chain were failed before).
        forked_rows = {(r["signature"], r["agent_wallet"]) for r in first.truth
                       if r["signature"] in dropped and r["status"] != "failed"}
        with psycopg.connect(db_url) as conn:
            marked = set(conn.execute(
                "SELECT t.transaction_signature, a.wallet_address FROM transactions t"
                " JOIN agents a ON a.id = t.agent_id WHERE t.metadata->>'failure' = 'dropped'"
            ).fetchall())
        assert marked == forked_rows
        assert dead_letters(db_url) == []
        assert await daemon.stop() == 0, daemon.tail()


async def _ends_equal(daemon: DaemonProcess, url: str, workload: asyncio.Task[WorkloadSummary],
                      what: str) -> int:
    """Once the traffic is sent: the database equal to its truth, no dead letter, a clean
    stop. How many times the daemon took the shard lock."""
    summary = await workload
    await eventually(lambda: truth_differences(url, summary.truth), deadline=60,
                     what=f"database equal to the ground truth after {what}")
    assert dead_letters(url) == []
    acquired = len(daemon.events("shard_lock_acquired"))
    assert await daemon.stop() == 0, daemon.tail()
    return acquired


async def test_postgres_restarted_during_the_run_loses_nothing() -> None:
    # Its own server, whatever the suite runs on: this test stops and restarts it. Durable
    # (fsync, synchronous commit): an immediate stop is a crash, and a server that forgets
    # commits it acknowledged would make the comparison with the truth meaningless.
    with own_server() as server:
        url, data_dir = server.url, server.data_dir
        async with Localnet(CLUSTER) as net, running_daemon(url, net.http_url, net.ws_url) as daemon:
            await daemon.wait_logged("shard_lock_acquired")
            workload = _traffic(net, url, seed=51, rate=40, count=160)
            # Early in the traffic (registration is over once rows arrive), the server stops.
            await eventually(lambda: _at_least_rows(url, 10), deadline=60, what="traffic indexed")
            landed = len(net.ledger.by_signature)
            assert await asyncio.to_thread(embedded.stop, data_dir, mode="immediate")
            # Down until the daemon has noticed and the traffic went on without it.
            def outage_felt() -> list[str]:
                now = len(net.ledger.by_signature)
                if daemon.logged("shard_lock_unavailable") and now >= landed + 15:
                    return []
                return [f"lock loss logged: {daemon.logged('shard_lock_lost')}, reconnection refused "
                        f"logged: {daemon.logged('shard_lock_unavailable')}, {now - landed} "
                        f"transactions landed since the stop; daemon log:\n{daemon.tail(15)}"]

            await eventually(outage_felt, deadline=30, what="the outage felt by the daemon")
            restarted = await asyncio.to_thread(embedded.start, data_dir, durable=True)
            assert restarted.port == server.port
            assert await _ends_equal(daemon, url, workload, "a PostgreSQL restart") >= 2, daemon.tail()


def _sessions_but_the_shard_lock(url: str) -> list[int]:
    """The daemon's sessions on the test's database, but the shard lock's (and ours)."""
    key = shard_lock_key(Shard()) & 0xFFFFFFFFFFFFFFFF
    with psycopg.connect(url, autocommit=True) as conn:
        holders = [pid for (pid,) in conn.execute(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
            " WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted"
            " AND l.classid::int8 = %s AND l.objid::int8 = %s AND l.objsubid = 1",
            (key >> 32, key & 0xFFFFFFFF)).fetchall()]
        assert len(holders) == 1, f"shard lock holders: {holders}"
        return [pid for (pid,) in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> %s",
            (holders[0],)).fetchall()]


async def _cut_sessions_but_the_shard_lock(url: str) -> int:
    """A connection-level outage (a proxy or a failover cutting sessions) that spares the
    shard lock's session; returns how many sessions were cut."""
    found: list[int] = []

    def open_sessions() -> list[str]:
        found[:] = _sessions_but_the_shard_lock(url)
        return [] if found else ["only the shard lock's session is open"]

    await eventually(open_sessions, deadline=30, what="daemon sessions to cut")
    with psycopg.connect(url, autocommit=True) as conn:
        return sum(bool(row and row[0]) for row in (
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() for pid in found))


async def test_database_connections_cut_are_ridden_out_in_place(db_url: str) -> None:
    # No reconciliation poll: a unit that failed on a cut connection would stay missing.
    async with Localnet(CLUSTER) as net, running_daemon(db_url, net.http_url, net.ws_url,
                                                        AMOCA_RECONCILE_INTERVAL="3600") as daemon:
        await daemon.wait_logged("ops_listening")
        workload = _traffic(net, db_url, seed=61, rate=60, count=120)
        for cut in range(1, 4):
            await eventually(partial(_at_least_rows, db_url, 20 * cut), deadline=60,
                             what=f"traffic indexed before cut {cut}")
            assert await _cut_sessions_but_the_shard_lock(db_url) > 0
            if cut == 2:  # the websockets drop too: the resubscribe's gap-fill meets dead sessions
                assert await fault(net.admin_url, "drop-websockets") > 0
        summary = await workload
        await eventually(lambda: truth_differences(db_url, summary.truth), deadline=60,
                         what="database equal to the ground truth after connections were cut")
        # Ridden out in place: the shard lock was never lost, so nothing restarted.
        assert len(daemon.events("shard_lock_acquired")) == 1, daemon.tail()
        assert not daemon.logged("daemon_task_failed"), daemon.tail()
        assert dead_letters(db_url) == []
        assert await daemon.stop() == 0, daemon.tail()


async def test_a_failover_to_a_standby_lacking_the_last_commits_loses_nothing(tmp_path: Path) -> None:
    """The database fails over to a standby that lacks the primary's last commits, and
    the daemon's connections but the shard lock's reach it first: the lock, still held on
    the old primary, would not tell for as long as that server lives. The writer refuses
    to commit in the new server life -- its cursors would go on from rows the standby
    lacks -- and the daemon starts over from the standby's cursors. No reconciliation
    poll: only that start-over finds the lost rows again."""
    with own_server(durable=False) as primary, tcp_proxy("127.0.0.1", primary.port) as proxy:
        primary_url = primary.url
        try:
            proxied = conninfo.make_conninfo(primary_url, port=proxy.port)
            async with Localnet(CLUSTER) as net, running_daemon(
                    proxied, net.http_url, net.ws_url, AMOCA_RECONCILE_INTERVAL="3600") as daemon:
                await daemon.wait_logged("shard_lock_acquired")
                workload = _traffic(net, primary_url, seed=71, rate=40, count=160)
                await eventually(lambda: _at_least_rows(primary_url, 10), deadline=60, what="traffic indexed")
                standby = await asyncio.to_thread(promoted_copy, primary, tmp_path / "standby")
                standby_url = standby.url("amoca")
                copied = row_count(standby_url)
                # Commits the standby will never have.
                await eventually(partial(_at_least_rows, primary_url, copied + 5), deadline=60,
                                 what="rows committed on the primary after the copy")
                proxy.retarget("127.0.0.1", standby.port)
                assert await _cut_sessions_but_the_shard_lock(primary_url) > 0
                assert await _ends_equal(daemon, standby_url, workload, "the failover") == 2, daemon.tail()
                assert daemon.logged("shard_server_changed"), daemon.tail()
        finally:
            await asyncio.to_thread(embedded.stop, tmp_path / "standby", mode="immediate")


async def test_a_backend_crash_under_asynchronous_commits_loses_nothing() -> None:
    """The writer commits asynchronously (AMOCA_WRITER_SYNCHRONOUS_COMMIT=off) to a durable
    server, and its backend is killed mid-traffic: the server resets shared memory and
    recovers -- commits still in the WAL buffers are gone, the postmaster is the same one
    -- and every session ends. The daemon starts over from the cursors the server kept.
    No reconciliation poll: only that start-over can find what was lost."""
    with own_server() as server:
        url = server.url
        async with Localnet(CLUSTER) as net, running_daemon(
                url, net.http_url, net.ws_url, AMOCA_RECONCILE_INTERVAL="3600",
                AMOCA_WRITER_SYNCHRONOUS_COMMIT="off") as daemon:
            await daemon.wait_logged("shard_lock_acquired")
            workload = _traffic(net, url, seed=81, rate=40, count=160)
            await eventually(lambda: _at_least_rows(url, 20), deadline=60, what="traffic indexed")
            with psycopg.connect(url, autocommit=True) as conn:
                (writer,) = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                                         (WRITER_APPLICATION_NAME,)).fetchone() or (None,)
            assert writer is not None
            os.kill(writer, signal.SIGKILL)
            assert await _ends_equal(daemon, url, workload, "a backend crash") >= 2, daemon.tail()
