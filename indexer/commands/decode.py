"""`amoca-indexer decode`: decode one transaction for some wallets and print the rows.

The argument is a saved getTransaction response (the JSON-RPC envelope or just its
``result``), or a transaction signature fetched from the configured RPC endpoints.
Nothing is written anywhere: this is the tool for asking "what would the indexer make
of this transaction?".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import click
import orjson
from solders.pubkey import Pubkey

from indexer.commands import settings
from indexer.config import redact_url
from indexer.decode import decode_transaction_bytes
from indexer.decode.base58 import b58decode
from indexer.errors import DecodeError, RpcUnavailable

ENCODINGS = ("json", "jsonParsed", "base64")
_SIGNATURE_BYTES = 64
_FETCH_TIMEOUT_S = 30.0


def _wallets(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> frozenset[str]:
    for value in values:
        try:
            Pubkey.from_string(value)
        except ValueError:
            raise click.BadParameter(f"{value!r} is not a base58 public key", ctx, param) from None
    return frozenset(values)


def looks_like_signature(text: str) -> bool:
    """True when ``text`` is base58 for 64 bytes, the shape of a transaction signature."""
    if not 64 <= len(text) <= 88:
        return False
    try:
        return len(b58decode(text)) == _SIGNATURE_BYTES
    except ValueError:
        return False


def get_transaction_request(signature: str, encoding: str, commitment: str) -> bytes:
    """The JSON-RPC body of one getTransaction call."""
    config = {"encoding": encoding, "maxSupportedTransactionVersion": 0, "commitment": commitment}
    return orjson.dumps(
        {"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": [signature, config]}
    )


async def fetch_transaction(urls: tuple[str, ...], body: bytes) -> bytes:
    """POST ``body`` to each URL in turn until one answers 200; the raw response bytes.

    Deliberately minimal (one request, fail-over, no retries): a stand-in until the
    project's RPC client can be called here instead.
    """
    import aiohttp  # the network stack is loaded only when a signature is fetched

    failures: list[str] = []
    timeout = aiohttp.ClientTimeout(total=_FETCH_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for url in urls:
            try:
                async with session.post(
                    url, data=body, headers={"Content-Type": "application/json"}
                ) as response:
                    payload = await response.read()
                    if response.status == 200:
                        return payload
                    failures.append(f"{redact_url(url)}: HTTP {response.status}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(f"{redact_url(url)}: {type(exc).__name__}")
    raise RpcUnavailable("getTransaction failed on every endpoint: " + "; ".join(failures))


@click.command("decode")
@click.argument("source", metavar="FILE_OR_SIGNATURE")
@click.option("--wallet", "wallets", multiple=True, required=True, callback=_wallets,
              metavar="W", help="Agent wallet to decode for (repeatable).")
@click.option("--encoding", type=click.Choice(ENCODINGS), default="json", show_default=True,
              help="Encoding to request when fetching a signature (a file's is detected).")
def command(source: str, wallets: frozenset[str], encoding: str) -> None:
    """Print the rows FILE_OR_SIGNATURE makes for the --wallet agents, as JSON."""
    path = Path(source)
    if path.is_file():
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise click.UsageError(f"cannot read {source}: {exc.strerror}") from None
    elif looks_like_signature(source):
        config = settings()
        body = get_transaction_request(source, encoding, config.commitment)
        raw = asyncio.run(fetch_transaction(config.rpc_urls, body))
    else:
        raise click.UsageError(f"{source!r} is neither a file nor a transaction signature")
    try:
        decoded = decode_transaction_bytes(raw, wallets)
    except DecodeError as exc:
        detail = f" ({exc.detail})" if exc.detail else ""
        raise click.ClickException(f"cannot decode: {exc.reason}{detail}") from None
    click.echo(orjson.dumps(decoded.to_json_dict(), option=orjson.OPT_INDENT_2).decode())
