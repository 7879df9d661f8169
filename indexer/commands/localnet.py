"""`amoca-indexer localnet`: the local Solana cluster, until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import signal

import click


async def _serve(port: int, slot_ms: int, finality_slots: int, seed: int | None) -> None:
    from indexer.localnet import Localnet, LocalnetConfig

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = LocalnetConfig(port=port, slot_ms=slot_ms, finality_slots=finality_slots, seed=seed)
    try:
        async with Localnet(config) as net:
            click.echo(f"JSON-RPC  {net.http_url}\nPubSub    {net.ws_url}\nadmin     {net.admin_url}",
                       err=False)
            await stop.wait()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on 127.0.0.1:{port}/{port + 1}: {exc.strerror}") from None


@click.command("localnet")
@click.option("--port", default=8899, show_default=True, type=click.IntRange(0, 65534),
              help="HTTP JSON-RPC port; the websocket listens on port + 1 (0: pick free ports).")
@click.option("--slot-ms", default=400, show_default=True, type=click.IntRange(5, 60_000),
              help="Slot duration in milliseconds.")
@click.option("--finality-slots", default=32, show_default=True, type=click.IntRange(1, 1000),
              help="Slots from processed to finalized.")
@click.option("--seed", type=int, default=None, help="Seed for fault-injection randomness.")
def command(port: int, slot_ms: int, finality_slots: int, seed: int | None) -> None:
    """Run the local Solana cluster (LiteSVM behind real JSON-RPC and PubSub)."""
    asyncio.run(_serve(port, slot_ms, finality_slots, seed))
