"""Replicas (DESIGN section 7) as real processes against the localnet and PostgreSQL: two
daemons on the same shard, one active and one standby; SIGKILL the active one mid-workload
and the standby takes the shard over within 10 s (the issue's requirement), after which
the database equals the ground truth. A third daemon on the other shard indexes its half,
and the rankings job runs on one replica at a time, cluster-wide."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet.workload import WorkloadConfig, run_workload
from tests.e2e.harness import (
    DaemonProcess,
    database_rows,
    differences,
    eventually,
    expected_rows,
    row_count,
    running_daemon,
    stats_consistent,
)

CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=6, seed=41)
TAKEOVER_LIMIT = 10.0  # seconds, from the issue


async def shard_active(http: aiohttp.ClientSession, daemon: DaemonProcess) -> float:
    """The replica's amoca_indexer_shard_active, scraped from its /metrics."""
    (listening,) = daemon.events("ops_listening")
    async with http.get(f"http://127.0.0.1:{listening['port']}/metrics") as response:
        text = await response.text()
    (value,) = [sample.value for family in text_string_to_metric_families(text)
                for sample in family.samples if sample.name == "amoca_indexer_shard_active"]
    return value


async def readiness(http: aiohttp.ClientSession, daemon: DaemonProcess) -> tuple[int, dict[str, Any]]:
    (listening,) = daemon.events("ops_listening")
    async with http.get(f"http://127.0.0.1:{listening['port']}/readyz") as response:
        return response.status, await response.json()


async def test_standby_takes_over_a_killed_replica_within_10_s_and_nothing_is_lost(db_url: str) -> None:
    loop = asyncio.get_running_loop()
    async with Localnet(CLUSTER) as net, aiohttp.ClientSession() as http, \
            running_daemon(db_url, net.http_url, net.ws_url, AMOCA_SHARD="0/2") as active, \
            running_daemon(db_url, net.http_url, net.ws_url, AMOCA_SHARD="1/2") as other_shard:
        await active.wait_logged("shard_lock_acquired")
        await other_shard.wait_logged("shard_lock_acquired")
        async with running_daemon(db_url, net.http_url, net.ws_url, AMOCA_SHARD="0/2") as standby:
            await standby.wait_logged("standby_waiting_for_shard")
            await standby.wait_logged("ops_listening")
            assert not standby.logged("shard_lock_acquired"), standby.tail()
            status, body = await readiness(http, standby)
            assert status == 200, body  # ready to take over: it reaches the database
            assert "standby" in body["checks"]["daemon"]["detail"]
            assert await shard_active(http, standby) == 0
            assert await shard_active(http, active) == 1

            first = asyncio.create_task(run_workload(WorkloadConfig(
                rpc_url=net.http_url, rate=30, count=80, agents=6, users=8, seed=51,
                database_url=db_url)))
            # Kill the active replica mid-stream, once it has committed some rows.
            await eventually(lambda: [] if row_count(db_url) >= 10 else ["fewer than 10 rows"],
                             deadline=60, what="first rows indexed")
            killed_at = loop.time()
            assert await active.stop(signal.SIGKILL) == -signal.SIGKILL
            committed_at_kill, sending = row_count(db_url), not first.done()
            while not standby.logged("shard_lock_acquired"):
                assert loop.time() - killed_at <= TAKEOVER_LIMIT, (
                    f"the standby did not take over within {TAKEOVER_LIMIT} s:\n{standby.tail()}")
                await asyncio.sleep(0.05)
            takeover = loop.time() - killed_at
            print(f"standby took over {takeover:.2f} s after SIGKILL; {committed_at_kill} rows were"
                  f" committed then, the workload {'still' if sending else 'no longer'} sending")
            assert takeover <= TAKEOVER_LIMIT

            summary = await first
            # More traffic (and agents) once the standby is the active replica.
            second = await run_workload(WorkloadConfig(
                rpc_url=net.http_url, rate=150, count=50, agents=3, users=6, seed=52,
                database_url=db_url))
            expected = expected_rows([*summary.truth, *second.truth])
            await eventually(lambda: differences(expected, database_rows(db_url)), deadline=90,
                             what="database equal to the ground truth after the failover")
            assert stats_consistent(db_url)

            # Ready as the active replica now (websockets up, lag under the threshold).
            deadline = loop.time() + 30
            while (answer := await readiness(http, standby))[0] != 200 or \
                    "standby" in answer[1]["checks"]["daemon"]["detail"]:
                assert loop.time() < deadline, f"the new active replica is not ready: {answer}"
                await asyncio.sleep(0.2)
            assert await shard_active(http, standby) == 1
            # The rankings job ran, on one replica at a time cluster-wide: the runner only
            # changes when the one holding the rankings lock dies (here: the killed one).
            refreshes = sorted((record["timestamp"], name) for name, daemon in (
                ("killed", active), ("standby", standby), ("other shard", other_shard))
                for record in daemon.events("rankings_refreshed"))
            runners = [name for i, (_, name) in enumerate(refreshes)
                       if i == 0 or refreshes[i - 1][1] != name]
            assert runners, "no replica refreshed the rankings"
            print(f"rankings runners, in order: {runners}")
            assert len(runners) == 1 or (runners[:1] == ["killed"] and len(runners) == 2), runners
            assert await standby.stop() == 0, standby.tail()
        assert await other_shard.stop() == 0, other_shard.tail()
