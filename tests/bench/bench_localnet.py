"""Local cluster fan-out: ``python tests/bench/bench_localnet.py [subscriptions] [transactions]``.

Opens N `logsSubscribe {mentions: [wallet]}` subscriptions (default 10,000, over 10
websocket connections, subscribe requests pipelined), then sends pre-signed SOL transfers
(each to one subscribed wallet) over HTTP with 8 concurrent senders, and measures the
rate at which transactions are accepted AND every `processed` notification has arrived.
The cluster, the senders and the subscribers share this process (one core for all of
them), so the figure is a lower bound for the cluster alone. Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import base64
import statistics
import sys
import time

import aiohttp
import orjson
from solders.hash import Hash
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from indexer.localnet import Localnet, LocalnetConfig

CONNECTIONS = 10


async def one_run(subscriptions: int, transactions: int) -> tuple[float, float, float]:
    async with Localnet(LocalnetConfig(port=0, slot_ms=400, finality_slots=32)) as net, \
            aiohttp.ClientSession() as session:
        wallets = [Keypair().pubkey() for _ in range(subscriptions)]
        sockets = [await session.ws_connect(net.ws_url, max_msg_size=0) for _ in range(CONNECTIONS)]
        started = time.perf_counter()
        for index, ws in enumerate(sockets):
            mine = wallets[index::CONNECTIONS]
            for n, wallet in enumerate(mine):
                await ws.send_str(orjson.dumps({"jsonrpc": "2.0", "id": n, "method": "logsSubscribe",
                                                "params": [{"mentions": [str(wallet)]},
                                                           {"commitment": "processed"}]}).decode())
            for _ in mine:
                await ws.receive()
        subscribe_seconds = time.perf_counter() - started
        payers = [Keypair() for _ in range(8)]
        for payer in payers:
            net.ledger.airdrop(payer.pubkey(), 10**15)
        blockhash = Hash.from_string(net.ledger.latest_blockhash[0])
        bodies = []
        for i in range(transactions):
            payer = payers[i % len(payers)]
            message = MessageV0.try_compile(payer.pubkey(), [transfer(TransferParams(
                from_pubkey=payer.pubkey(), to_pubkey=wallets[i % len(wallets)], lamports=10**9 + i))],
                [], blockhash)
            wire = base64.b64encode(bytes(VersionedTransaction(message, [payer]))).decode()
            bodies.append(orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "sendTransaction",
                                        "params": [wire, {"encoding": "base64", "skipPreflight": True}]}))
        received = 0
        done = asyncio.Event()

        async def listen(ws: aiohttp.ClientWebSocketResponse) -> None:
            nonlocal received
            async for _ in ws:
                received += 1
                if received >= transactions:
                    done.set()

        listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        for body in bodies:
            queue.put_nowait(body)

        async def sender() -> None:
            while not queue.empty():
                async with session.post(net.http_url, data=queue.get_nowait(),
                                        headers={"Content-Type": "application/json"}) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(8)))
        await asyncio.wait_for(done.wait(), 120)
        elapsed = time.perf_counter() - started
        for task in listeners:
            task.cancel()
        for ws in sockets:
            await ws.close()
        return transactions / elapsed, received / elapsed, subscribe_seconds


async def main() -> None:
    subscriptions = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    transactions = int(sys.argv[2]) if len(sys.argv) > 2 else 3_000
    runs = [await one_run(subscriptions, transactions) for _ in range(3)]
    print(f"localnet fan-out: {subscriptions:,} mentions subscriptions over {CONNECTIONS} websockets, "
          f"{transactions:,} transfers per run, 3 runs, cluster + senders + subscribers in one process")
    print(f"  subscribe time        {statistics.median(r[2] for r in runs):8.2f} s (median)")
    print(f"  sustained rate        {statistics.median(r[0] for r in runs):8,.0f} tx/s "
          f"(median; runs {', '.join(f'{r[0]:,.0f}' for r in runs)}); target >= 1,000")
    print(f"  notifications/s       {statistics.median(r[1] for r in runs):8,.0f}")


if __name__ == "__main__":
    asyncio.run(main())
