"""The daemon end to end: localnet + workload + PostgreSQL + `amoca-indexer run` as a real
process. After the workload the database must equal the ground truth -- every row, status
and stat -- also when faults hit during the run."""

from __future__ import annotations

import signal

from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet.workload import WorkloadConfig, run_workload
from tests.e2e.harness import (
    database_rows,
    differences,
    eventually,
    expected_rows,
    running_daemon,
    stats_consistent,
)

CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=6, seed=7)


async def test_database_equals_ground_truth_with_agents_added_mid_run(db_url: str) -> None:
    async with Localnet(CLUSTER) as net, running_daemon(db_url, net.http_url, net.ws_url) as daemon:
        await daemon.wait_logged("ops_listening")
        # The daemon starts with no agents; the workload registers them while it runs.
        summary = await run_workload(WorkloadConfig(
            rpc_url=net.http_url, rate=200, count=120, agents=5, users=8, seed=11,
            database_url=db_url))
        expected = expected_rows(summary.truth)
        await eventually(lambda: differences(expected, database_rows(db_url)), deadline=60,
                         what="database equal to the ground truth")
        assert stats_consistent(db_url)
        assert await daemon.stop() == 0, daemon.tail()
        assert daemon.logged("daemon_stopped")


async def test_faults_during_the_run_lose_nothing(db_url: str) -> None:
    async with Localnet(CLUSTER) as net:
        async with running_daemon(db_url, net.http_url, net.ws_url) as daemon:
            await daemon.wait_logged("ops_listening")
            net.faults.drop_fraction, net.faults.drop_until = 0.2, float("inf")  # 20% vanish
            workload = WorkloadConfig(rpc_url=net.http_url, rate=150, count=100, agents=4, users=6,
                                      seed=23, database_url=db_url)
            summary = await run_workload(workload)
            await net.drop_websockets()
            # SIGKILL mid-flight, then a fresh process picks up from the cursors.
            await daemon.stop(signal.SIGKILL)
        # Traffic (and new agents) while no daemon runs: the restart must catch up on it.
        second = WorkloadConfig(rpc_url=net.http_url, rate=150, count=60, agents=3, users=6, seed=24,
                                database_url=db_url)
        more = await run_workload(second)
        async with running_daemon(db_url, net.http_url, net.ws_url) as daemon:
            expected = expected_rows([*summary.truth, *more.truth])
            await eventually(lambda: differences(expected, database_rows(db_url)), deadline=90,
                             what="database equal to the ground truth after faults")
            assert stats_consistent(db_url)
            assert await daemon.stop() == 0, daemon.tail()
