"""A backfill through a database failover that loses commits, against the localnet and a
PostgreSQL server of the test's own (it is restarted; the suite's server never is).

The standby promoted when an asynchronous primary dies lacks the primary's last commits;
so does a server that crashed with ``synchronous_commit = off``. Both are a new life of
the server (``indexer.db.connection.server_life``). Here the server crashes (an immediate
stop) and starts again while no client can reach it (a proxy refuses them), and the rows
the run committed after its last progress save that survives are deleted before the
proxy lets the run back in: what such a standby would hold. The run rides the outage
out; it must then notice that its pages were committed in a life that is gone, and write
them again rather than save progress past them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from psycopg import conninfo
from psycopg_pool import AsyncConnectionPool
from structlog.testing import capture_logs

from indexer.backfill import Range, backfill_agent
from indexer.db import embedded
from indexer.db.task_owners import task_owner_lookup
from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet.workload import WorkloadConfig, run_workload
from indexer.metrics import Metrics
from indexer.pipeline import Pipeline
from indexer.rpc import RpcClient
from indexer.rpc.protocol import SignatureInfo
from indexer.sink import PostgresWriter, writer_pool
from tests.e2e.harness import database_rows, differences, expected_rows
from tests.support.proxy import TcpProxy, tcp_proxy
from tests.support.servers import OwnServer, own_server

CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=6, seed=17)
WORKLOAD = WorkloadConfig(rate=500, count=120, agents=2, users=4, seed=17)
PAGE = 8  # signatures a listing page: the agent's wallet history takes several


@pytest.fixture
def own() -> Iterator[OwnServer]:
    with own_server() as server:  # durable: a crash loses nothing the test does not delete
        yield server


@pytest.fixture
def proxy(own: OwnServer) -> Iterator[TcpProxy]:
    with tcp_proxy("127.0.0.1", own.port) as proxied:
        yield proxied


class Failover:
    """The agent wallet's listing, in small pages; before its fourth page, a failover.

    By then the first page's progress is saved and the second and third pages' rows are
    committed (the pipeline is idle), their progress not yet. The server is restarted
    behind a refusing proxy, those rows are deleted -- lost with the old primary -- and
    the proxy accepts again."""

    def __init__(self, rpc: RpcClient, wallet: str, server: OwnServer, proxy: TcpProxy,
                 pipeline: Pipeline) -> None:
        self.rpc, self.wallet, self.server, self.proxy, self.pipeline = rpc, wallet, server, proxy, pipeline
        self.pages: list[list[SignatureInfo]] = []
        self.lost = 0  # rows deleted
        self.saved_before: str | None = None  # the wallet's progress as the failover found it

    async def iter_signatures(self, address: str, *, until: str | None = None,
                              before: str | None = None) -> AsyncIterator[Sequence[Any]]:
        async for page in self.rpc.iter_signatures(address, until=until, before=before, limit=PAGE):
            if address == self.wallet and not self.lost:
                if len(self.pages) == 3:
                    await self.fail_over()
                self.pages.append(page)
            yield page

    async def fail_over(self) -> None:
        await self.pipeline.wait_idle()
        self.proxy.refuse()
        self.proxy.cut()
        lost = [info.signature for page in self.pages[1:3] for info in page]
        self.lost, self.saved_before = await asyncio.to_thread(self._restart_losing, lost)
        self.proxy.accept()

    def _restart_losing(self, lost: list[str]) -> tuple[int, str | None]:
        # A crash (an immediate stop: a new server life) of a durable server, which loses
        # nothing of its own: what is lost is what the test deletes.
        embedded.stop(self.server.data_dir, mode="immediate")
        embedded.start(self.server.data_dir)
        with psycopg.connect(self.server.url, autocommit=True) as conn:
            deleted = conn.execute("DELETE FROM transactions WHERE transaction_signature = ANY(%s)",
                                   (lost,)).rowcount
            row = conn.execute("SELECT before_signature FROM backfill_progress WHERE wallet_address = %s",
                               (self.wallet,)).fetchone()
        return deleted, None if row is None else row[0]


async def test_pages_committed_in_a_lost_server_life_are_written_again(own: OwnServer,
                                                                        proxy: TcpProxy) -> None:
    async with Localnet(CLUSTER) as net:
        config = WorkloadConfig(**{**{n: getattr(WORKLOAD, n) for n in WORKLOAD.__slots__},
                                   "rpc_url": net.http_url, "database_url": own.url})
        summary = await run_workload(config)
        wallet = summary.agent_wallets[0]
        accounts = sorted(net.ledger.token_accounts.get(wallet, {}))
        proxied = conninfo.make_conninfo(own.url, port=proxy.port)
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(proxied, min_size=1, max_size=3, open=False,
                                                             kwargs={"autocommit": True})
        writes = writer_pool(proxied)
        async with RpcClient([net.http_url]) as rpc, pool, writes:
            pipeline = Pipeline(source=rpc, writer=PostgresWriter(writes), watched=lambda: {wallet},
                                metrics=Metrics(CollectorRegistry()), task_lookup=task_owner_lookup(pool),
                                fetch_batch=4)
            listing = Failover(rpc, wallet, own, proxy, pipeline)
            runner = asyncio.create_task(pipeline.run())
            try:
                with capture_logs() as logs:
                    async with asyncio.timeout(60):
                        progress = await backfill_agent(wallet, accounts, Range(), rpc=listing,
                                                        pipeline=pipeline, pool=pool)
            finally:
                runner.cancel()
                await asyncio.gather(runner, return_exceptions=True)

    assert progress.done
    assert listing.saved_before == listing.pages[0][-1].signature  # the first page's progress
    assert listing.lost > 0, "the failover lost no row: the test proves nothing"
    expected = {key: (user, type_, "failed" if status == "failed" else "pending", *rest)
                for key, (user, type_, status, *rest) in expected_rows(summary.truth).items()
                if key[1] == wallet}
    problems = differences(expected, database_rows(own.url))
    assert not problems, "\n".join(problems[:15])
    assert any(e["event"] == "backfill_server_changed" and e["address"] == wallet for e in logs)
