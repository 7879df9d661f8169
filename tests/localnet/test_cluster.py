"""The local cluster over real sockets: third-party clients, response shapes against real
mainnet answers, JSON-RPC errors, PubSub commitment levels, and every fault on demand."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.core import RPCException
from solana.rpc.websocket_api import SolanaWsClient
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.config import RpcTransactionLogsFilterMentions
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from indexer.localnet import Localnet, LocalnetConfig, encoding
from indexer.localnet.ledger import COMMITMENTS
from indexer.localnet.rpc import STATUS_CACHE_SLOTS
from tests.e2e.harness import eventually
from tests.support.paths import shared_dir

MEMO = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
FIXTURES = shared_dir() / "fixtures"


@pytest.fixture
async def net() -> AsyncIterator[Localnet]:
    async with Localnet(LocalnetConfig(port=0, slot_ms=25, finality_slots=4, seed=3)) as cluster:
        yield cluster


async def rpc(net: Localnet, method: str, params: list[Any] | None = None,
              session: aiohttp.ClientSession | None = None) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}
    async with aiohttp.ClientSession() as own, (session or own).post(net.http_url, json=body) as response:
        assert response.status == 200
        answer: dict[str, Any] = await response.json()
        return answer


def memo_transfer(net: Localnet, payer: Keypair, to: Pubkey, lamports: int,
                  memo: bytes) -> VersionedTransaction:
    blockhash, _ = net.ledger.latest_blockhash
    from solders.hash import Hash

    message = MessageV0.try_compile(payer.pubkey(), [
        transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=to, lamports=lamports)),
        Instruction(MEMO, memo, [AccountMeta(payer.pubkey(), True, False)])], [], Hash.from_string(blockhash))
    return VersionedTransaction(message, [payer])


async def funded(net: Localnet) -> Keypair:
    payer = Keypair()
    signature = net.ledger.airdrop(payer.pubkey(), 10 * 10**9)
    async with asyncio.timeout(10):
        await net.wait_for_signature(signature, "processed")
    return payer


async def test_solana_py_clients_work_against_it(net: Localnet) -> None:
    client = AsyncClient(net.http_url)
    try:
        payer, agent = await funded(net), Keypair()
        async with SolanaWsClient(net.ws_url) as ws:
            await ws.logs_subscribe(filter_=RpcTransactionLogsFilterMentions(agent.pubkey()),
                                    commitment="confirmed")
            sent = await client.send_transaction(memo_transfer(net, payer, agent.pubkey(), 10**9,
                                                               b"amoca:1:funding"))
            note = await asyncio.wait_for(ws.recv(), 10)
        assert str(sent.value) in str(note)
        for encoding in ("json", "jsonParsed", "base64"):
            fetched = await client.get_transaction(sent.value, encoding=encoding, commitment="confirmed",
                                                   max_supported_transaction_version=0)
            assert fetched.value is not None
            assert fetched.value.transaction.meta is not None
            assert fetched.value.transaction.meta.fee == 5000
        balance = await client.get_balance(agent.pubkey(), commitment="processed")
        assert balance.value == 10**9
        page = await client.get_signatures_for_address(agent.pubkey(), limit=1, commitment="confirmed")
        assert [str(s.signature) for s in page.value] == [str(sent.value)]
        assert page.value[0].memo == "[15] amoca:1:funding"
        statuses = await client.get_signature_statuses([sent.value])
        assert statuses.value[0] is not None
        broke = Keypair()
        with pytest.raises(RPCException, match="simulation failed"):
            await client.send_transaction(memo_transfer(net, broke, agent.pubkey(), 10**9, b"x"))
    finally:
        await client.close()


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path in a JSON value (list items merged), for shape comparison."""
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, inner in value.items():
            paths.add(f"{prefix}.{key}")
            paths |= key_paths(inner, f"{prefix}.{key}")
    elif isinstance(value, list):
        for inner in value:
            paths |= key_paths(inner, f"{prefix}[]")
    return paths


def fixture_result(name: str) -> dict[str, Any]:
    document = orjson.loads((FIXTURES / "getTransaction" / name).read_bytes())
    result: dict[str, Any] = document.get("result", document)
    return result


@pytest.mark.parametrize(("encoding", "fixture", "ignore"), [
    ("json", "audius_2ML2h2_mainnet_v0_4alts_jupiter_swap.json.response.json", ("returnData",)),
    ("base64", "crosschain_2aoWC4_mainnet_v0_alt_SOL_USDC.base64.result.json", ("returnData",)),
])
async def test_get_transaction_has_every_key_a_real_node_sends(
        net: Localnet, encoding: str, fixture: str, ignore: tuple[str, ...]) -> None:
    payer = await funded(net)
    tx = memo_transfer(net, payer, Keypair().pubkey(), 10**9, b"amoca:1:funding")
    signature = net.ledger.send(tx)
    async with asyncio.timeout(10):
        await net.wait_for_signature(signature, "confirmed")
    ours = (await rpc(net, "getTransaction", [signature, {
        "encoding": encoding, "maxSupportedTransactionVersion": 0, "commitment": "confirmed"}]))["result"]
    real = fixture_result(fixture)
    # Compare the containers both have; lists of items merged; optional ones listed.
    missing = {p for p in key_paths(real) - key_paths(ours)
               if not any(i in p for i in ignore) and "innerInstructions[]" not in p
               and "TokenBalances[]" not in p and "addressTableLookups" not in p and "rewards[]" not in p}
    assert missing == set()


async def test_get_transaction_answers_are_rendered_once_and_never_change(net: Localnet) -> None:
    """Answers are kept per (encoding, version flag): asked again, in a batch or alone, a
    transaction reads the same as a fresh rendering of the ledger record; a signature the
    ledger never held still answers null, and a malformed one the same error as before."""
    payer = await funded(net)
    signature = net.ledger.send(memo_transfer(net, payer, Keypair().pubkey(), 10**9, b"amoca:1:funding"))
    async with asyncio.timeout(10):
        await net.wait_for_signature(signature, "confirmed")
    record = net.ledger.by_signature[signature]
    for enc in ("json", "jsonParsed", "base64"):
        config = {"encoding": enc, "commitment": "confirmed", "maxSupportedTransactionVersion": 0}
        fresh = orjson.loads(orjson.dumps(encoding.transaction_result(record, enc, versioned_ok=True)))
        alone = [(await rpc(net, "getTransaction", [signature, config]))["result"] for _ in range(2)]
        body = [{"jsonrpc": "2.0", "id": i, "method": "getTransaction", "params": [signature, config]}
                for i in range(3)]
        async with aiohttp.ClientSession() as session, session.post(net.http_url, json=body) as response:
            batch = [item["result"] for item in await response.json()]
        assert alone == [fresh, fresh]
        assert batch == [fresh, fresh, fresh]
        # Without the version flag a v0 transaction is refused, cached answer or not.
        refused = await rpc(net, "getTransaction", [signature, {"encoding": enc, "commitment": "confirmed"}])
        assert refused["error"]["code"] == -32015
    assert set(record.rendered) == {("json", True), ("jsonParsed", True), ("base64", True)}
    unknown = str(Keypair().sign_message(b"never sent"))
    config = {"encoding": "base64", "commitment": "confirmed", "maxSupportedTransactionVersion": 0}
    assert (await rpc(net, "getTransaction", [unknown, config]))["result"] is None
    bad = await rpc(net, "getTransaction", ["not-a-signature", config])
    assert bad["error"] == {"code": -32602, "message": "Invalid param: Invalid"}


async def test_signature_pages_walk_an_address_history_newest_first(net: Localnet) -> None:
    """Paged with ``before`` (five at a time), an address's history is the one-page
    listing, ordered as a node orders it (by slot, then by signature within a slot, not
    in the order transactions ran); ``until`` stops short of its signature; a ``before`` or
    ``until`` of another address's transaction bounds the listing where that transaction
    stands, as a node's blockstore bounds it; a ``before`` no node saw lists nothing, an
    ``until`` no node saw bounds nothing; each entry's confirmationStatus is the record's
    level right now."""
    agent, other = Keypair().pubkey(), Keypair().pubkey()
    sent = []
    elsewhere = []  # another address's transaction after each round, in a slot of its own

    async def next_slot() -> None:
        async with asyncio.timeout(10):
            await net.wait_for_slot(net.ledger.slot + 1)

    for round_ in range(4):  # three transactions in each of four slots
        sent += [net.ledger.airdrop(agent, 10**6 + 3 * round_ + i) for i in range(3)]
        await next_slot()
        elsewhere.append(net.ledger.airdrop(other, 10**6 + round_))
        await next_slot()
    async with asyncio.timeout(10):
        await net.wait_for_signature(sent[-1], "confirmed")

    async def page(**config: Any) -> list[dict[str, Any]]:
        params = [str(agent), {"commitment": "confirmed", **config}]
        answer = await rpc(net, "getSignaturesForAddress", params)
        result: list[dict[str, Any]] = answer["result"]
        return result

    whole = await page()
    slot_of = {entry["signature"]: entry["slot"] for entry in whole}
    ordered = sorted(sent, key=lambda s: (slot_of[s], bytes(Signature.from_string(s))))  # oldest first
    assert len({slot_of[s] for s in sent}) == 4
    assert [entry["signature"] for entry in whole] == ordered[::-1]
    walked: list[dict[str, Any]] = []
    before = None
    while batch := await page(limit=5, **({"before": before} if before else {})):
        walked += batch
        before = batch[-1]["signature"]
    # The slots keep closing between the two listings, so only confirmationStatus may
    # differ, and only forward (a slot can finalize in between).
    assert [{**e, "confirmationStatus": None} for e in walked] == [
        {**e, "confirmationStatus": None} for e in whole]
    rank = {level: i for i, level in enumerate(COMMITMENTS)}
    assert all(rank[w["confirmationStatus"]] >= rank[e["confirmationStatus"]]
               for w, e in zip(walked, whole, strict=True))
    assert [e["signature"] for e in await page(until=ordered[3])] == ordered[:3:-1]
    assert [e["signature"] for e in await page(before=ordered[6], until=ordered[2])] == ordered[5:2:-1]
    assert await page(before=str(Keypair().sign_message(b"never sent"))) == []
    # elsewhere[1] landed after the second round's slot, before the third's
    assert [e["signature"] for e in await page(before=elsewhere[1])] == ordered[5::-1]
    assert [e["signature"] for e in await page(until=elsewhere[1])] == ordered[:5:-1]
    assert [e["signature"] for e in await page(before=elsewhere[2], until=elsewhere[0])] == ordered[8:2:-1]
    assert await page(before=elsewhere[0], until=elsewhere[2]) == []  # the bounds reversed
    assert len(await page(until=str(Keypair().sign_message(b"never sent")))) == len(sent)
    def levels() -> dict[str, str]:
        return {s: net.ledger.level_of(net.ledger.by_signature[s].slot) for s in sent}

    earlier = levels()  # levels only move forward: the answer lies between these two
    listed = {entry["signature"]: entry["confirmationStatus"] for entry in await page()}
    later = levels()
    assert all(listed[s] in (earlier[s], later[s]) for s in sent), (earlier, listed, later)


async def test_logs_notification_shape_matches_the_documented_one(net: Localnet) -> None:
    real = orjson.loads((FIXTURES / "websocket" / "docs_logsNotification.json").read_bytes())
    payer, agent = await funded(net), Keypair()
    async with aiohttp.ClientSession() as session, session.ws_connect(net.ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "logsSubscribe",
                            "params": [{"mentions": [str(agent.pubkey())]}, {"commitment": "processed"}]})
        assert (await ws.receive_json())["result"] >= 1
        net.ledger.send(memo_transfer(net, payer, agent.pubkey(), 10**9, b"hello"))
        note = await asyncio.wait_for(ws.receive_json(), 10)
    assert key_paths(note) == key_paths(real)


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", -32700),
    (b"[]", -32600),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "noSuchMethod"}', -32601),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "getBalance", "params": ["not-a-key"]}', -32602),
    (b'{"jsonrpc": "2.0", "id": 1, "method": "getTransaction", "params": '
     b'["5hJfaZoyzjbyP7kXv2hfaFKNJNbyh8P3p5UPDZTSawVGLN4Qfe4KifSzRHyoBkTNsMNuK3uXkXqJk81AqkTJwQUg", '
     b'{"commitment": "processed"}]}', -32602),
])
async def test_json_rpc_errors_as_real_nodes_answer(net: Localnet, body: bytes, code: int) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            net.http_url, data=body, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 200
        answer = await response.json()
    assert answer["error"]["code"] == code


async def test_batches_keep_ids_and_get_is_refused(net: Localnet) -> None:
    batch = [{"jsonrpc": "2.0", "id": i, "method": "getSlot"} for i in range(5)]
    async with aiohttp.ClientSession() as session:
        async with session.post(net.http_url, json=batch) as response:
            answers = await response.json()
        async with session.get(net.http_url) as response:
            assert response.status == 405
    assert sorted(a["id"] for a in answers) == list(range(5))


async def test_mentions_takes_one_key_and_levels_arrive_in_order(net: Localnet) -> None:
    payer, agent = await funded(net), Keypair()
    async with aiohttp.ClientSession() as session, session.ws_connect(net.ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "logsSubscribe",
                            "params": [{"mentions": [str(agent.pubkey()), str(payer.pubkey())]}]})
        refused = await ws.receive_json()
        assert refused["error"] == {"code": -32602, "message": "Invalid Request: Only 1 address supported"}
        for request_id, level in enumerate(("processed", "confirmed", "finalized"), start=2):
            await ws.send_json({"jsonrpc": "2.0", "id": request_id, "method": "logsSubscribe",
                                "params": [{"mentions": [str(agent.pubkey())]}, {"commitment": level}]})
        subs = {(await ws.receive_json())["result"]: level
                for level in ("processed", "confirmed", "finalized")}
        signature = net.ledger.send(memo_transfer(net, payer, agent.pubkey(), 10**9, b"levels"))
        landed = net.ledger.by_signature[signature].slot
        arrivals = []
        for _ in range(3):
            note = await asyncio.wait_for(ws.receive_json(), 10)
            level = subs[note["params"]["subscription"]]
            arrivals.append(level)
            assert net.ledger.slot_at(level) >= landed
    assert arrivals == ["processed", "confirmed", "finalized"]


async def test_faults_do_what_they_say(net: Localnet) -> None:
    async with aiohttp.ClientSession() as session:
        async def admin(action: str, body: dict[str, Any] | None = None) -> Any:
            async with session.post(f"{net.admin_url}/{action}", json=body or {}) as response:
                return response.status, await response.json()

        async def get_slot() -> aiohttp.ClientResponse:
            return await session.post(net.http_url, json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"})

        await admin("http-errors", {"status": 429, "fraction": 1.0, "retry_after": 3})
        response = await get_slot()
        assert (response.status, response.headers["Retry-After"]) == (429, "3")
        await admin("http-errors", {"status": 503, "fraction": 1.0})
        assert (await get_slot()).status == 503
        await admin("clear")
        assert (await get_slot()).status == 200
        await admin("latency", {"ms": 150})
        started = time.monotonic()
        await get_slot()
        assert time.monotonic() - started >= 0.15
        await admin("clear")
        await admin("refuse", {"seconds": 60})
        with pytest.raises(aiohttp.ClientError):
            async with session.post(net.http_url, json={"jsonrpc": "2.0", "id": 1, "method": "getSlot"},
                                    headers={"Connection": "close"}) as refused:
                await refused.read()
        await admin("clear")
        assert (await get_slot()).status == 200
        state = await (await session.get(f"{net.admin_url}/state")).json()
        assert state["faults"]["refusing"] is False


async def test_dropped_websockets_and_notifications(net: Localnet) -> None:
    payer, agent = await funded(net), Keypair()
    async with aiohttp.ClientSession() as session, session.ws_connect(net.ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "logsSubscribe",
                            "params": [{"mentions": [str(agent.pubkey())]}, {"commitment": "processed"}]})
        await ws.receive_json()
        net.faults.drop_fraction, net.faults.drop_until = 1.0, float("inf")
        net.ledger.send(memo_transfer(net, payer, agent.pubkey(), 10**9, b"lost"))
        async with asyncio.timeout(10):
            await net.wait_for_slot(net.ledger.slot + 3)
        assert net.faults.dropped_notifications >= 1
        async with session.post(f"{net.admin_url}/drop-websockets") as response:
            assert response.status == 200
        closing = await asyncio.wait_for(ws.receive(), 10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_fork_removes_a_confirmed_slot_everywhere() -> None:
    # Finality far enough away (10 s) that a loaded machine cannot finalize the slot
    # between the confirmation and the fork request.
    async with Localnet(LocalnetConfig(port=0, slot_ms=25, finality_slots=400, seed=3)) as net:
        await _fork_removes_a_confirmed_slot_everywhere(net)


async def _fork_removes_a_confirmed_slot_everywhere(net: Localnet) -> None:
    payer, agent = await funded(net), Keypair()
    signature = net.ledger.send(memo_transfer(net, payer, agent.pubkey(), 10**9, b"forked"))
    async with asyncio.timeout(10):
        await net.wait_for_signature(signature, "confirmed")
    slot = net.ledger.by_signature[signature].slot
    async with aiohttp.ClientSession() as session, session.post(
            f"{net.admin_url}/fork", json={"slot": slot}) as response:
        dropped = (await response.json())["result"]
    assert signature in dropped["signatures"]
    assert (await rpc(net, "getTransaction", [signature, {"commitment": "confirmed"}]))["result"] is None
    assert (await rpc(net, "getSignatureStatuses", [[signature]]))["result"]["value"] == [None]
    assert (await rpc(net, "getSignaturesForAddress", [str(agent.pubkey()),
                                                       {"commitment": "confirmed"}]))["result"] == []
    assert (await rpc(net, "getBalance", [str(agent.pubkey())]))["result"]["value"] == 0


async def test_an_old_status_needs_the_history_searched(net: Localnet) -> None:
    """A node answers getSignatureStatuses from its status cache (the last 300 roots'
    slots) unless searchTransactionHistory asks for the ledger too."""
    signature = net.ledger.airdrop(Keypair().pubkey(), 10**6)
    for _ in range(net.ledger.finality_slots + STATUS_CACHE_SLOTS + 1):
        net.ledger.tick()

    async def status(**config: Any) -> Any:
        return (await rpc(net, "getSignatureStatuses", [[signature], config]))["result"]["value"][0]

    assert await status() is None
    assert await status(searchTransactionHistory=False) is None
    found = await status(searchTransactionHistory=True)
    assert found["confirmationStatus"] == "finalized"
    assert found["slot"] == net.ledger.by_signature[signature].slot


async def test_send_base58_and_base64_and_v0_version_rule(net: Localnet) -> None:
    payer = await funded(net)
    wire = bytes(memo_transfer(net, payer, Keypair().pubkey(), 10**9, b"b64"))
    from indexer.decode.base58 import b58encode

    sent64 = (await rpc(net, "sendTransaction", [base64.b64encode(wire).decode(), {"encoding": "base64"}]))
    wire58 = bytes(memo_transfer(net, payer, Keypair().pubkey(), 2 * 10**9, b"b58"))
    sent58 = (await rpc(net, "sendTransaction", [b58encode(wire58)]))
    async with asyncio.timeout(10):
        await net.wait_for_signature(sent58["result"], "confirmed")
    unversioned = await rpc(net, "getTransaction", [sent64["result"], {"commitment": "confirmed"}])
    assert unversioned["error"]["code"] == -32015


async def test_signature_slot_and_root_subscriptions(net: Localnet) -> None:
    payer = await funded(net)
    tx = memo_transfer(net, payer, Keypair().pubkey(), 10**9, b"sub")
    async with aiohttp.ClientSession() as session, session.ws_connect(net.ws_url) as ws:
        await ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "signatureSubscribe",
                            "params": [str(tx.signatures[0]), {"commitment": "confirmed"}]})
        await ws.send_json({"jsonrpc": "2.0", "id": 2, "method": "slotSubscribe"})
        await ws.send_json({"jsonrpc": "2.0", "id": 3, "method": "rootSubscribe"})
        ids = {}
        for _ in range(3):
            answer = await ws.receive_json()
            ids[answer["id"]] = answer["result"]
        net.ledger.send(tx)
        seen: dict[str, Any] = {}
        async with asyncio.timeout(10):
            while len(seen) < 3:
                note = await ws.receive_json()
                seen.setdefault(note["method"], note["params"])
        await ws.send_json({"jsonrpc": "2.0", "id": 4, "method": "signatureUnsubscribe",
                            "params": [ids[1]]})
        while (answer := await ws.receive_json()).get("id") != 4:
            pass
    assert seen["signatureNotification"]["result"]["value"] == {"err": None}
    assert seen["signatureNotification"]["subscription"] == ids[1]
    assert set(seen["slotNotification"]["result"]) == {"parent", "root", "slot"}
    assert isinstance(seen["rootNotification"]["result"], int)
    # A signature subscription ends after its notification: unsubscribing it again fails.
    assert answer["error"]["code"] == -32602


async def test_blocks_with_limit_list_the_slots_that_hold_a_block(net: Localnet) -> None:
    """getBlocksWithLimit, as agave answers it: block slots from the start slot on, at most
    ``limit``, up to the commitment's slot (confirmed or finalized only)."""
    signature = net.ledger.airdrop(Keypair().pubkey(), 10**6)
    landed = net.ledger.by_signature[signature].slot

    await eventually(lambda: [] if net.ledger.slot_at("confirmed") >= landed + 3 else ["not yet"],
                     deadline=10, what="three slots confirmed from the airdrop's on")
    answer = (await rpc(net, "getBlocksWithLimit", [landed, 3, {"commitment": "confirmed"}]))["result"]
    assert answer[0] == landed  # the airdrop's slot holds a block
    assert answer == sorted(answer)
    assert len(answer) == 3
    assert all(net.ledger.block(slot) is not None for slot in answer)
    block = (await rpc(net, "getBlock", [landed, {"transactionDetails": "signatures",
                                                  "commitment": "confirmed"}]))["result"]
    assert signature in block["signatures"]
    assert (await rpc(net, "getBlocksWithLimit", [net.ledger.slot + 10, 5]))["result"] == []
    for params, message in (([landed, 500_001], "Limit too large; max 500000"),
                            ([landed, 1, {"commitment": "processed"}],
                             "Method does not support commitment below `confirmed`"),
                            ([landed], "Invalid params: expected a start slot and a limit")):
        error = (await rpc(net, "getBlocksWithLimit", params))["error"]
        assert (error["code"], error["message"]) == (-32602, message)
