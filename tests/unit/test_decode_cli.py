"""`amoca-indexer decode`: files, signatures fetched over a real HTTP socket, and errors."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from test_decode_fixtures import TRANSACTIONS

from indexer.cli import cli

SOL_MEMO = TRANSACTIONS / "keyappkit_sendvialink_sol_transfer_memo.jsonParsed.response.json"
RECEIVER = "2b7iQq3PbWwWTotRSDFNXT9DauU418aCHK4jcAzETUem"
SIGNATURE = "5QMfuqThWSMMpLCRe3tk7qn7iSwWKfJV8EvD1ZPvyqAWa7Z2JftZ4rPq8YCxCwzSykX7dMkDB8RrovQMoL9ZZWKY"


@pytest.fixture
def runner(tmp_path: Path) -> CliRunner:
    # An empty config folder: the test sees only the environment it sets.
    return CliRunner(env={"AMOCA_CONFIG_DIR": str(tmp_path), "AMOCA_RPC_URL": None})


def test_decodes_a_saved_response(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["decode", str(SOL_MEMO), "--wallet", RECEIVER])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (row,) = document["rows"]
    assert (row["transaction_type"], row["amount"], row["amount_raw"], row["counterparty_wallet"]) == (
        "funding",
        "0.001000000",
        "1000000",
        "DT1mBDFsNBc1UXa25RdxNvnjL5Lro7su7gX1zpLyCmWe",
    )
    assert document["memo_rejection"]["reason"] == "not_amoca"
    assert document["signature"] == SIGNATURE


def test_prints_skipped_legs_for_the_sender(runner: CliRunner) -> None:
    sender = "DT1mBDFsNBc1UXa25RdxNvnjL5Lro7su7gX1zpLyCmWe"
    result = runner.invoke(cli, ["decode", str(SOL_MEMO), "--wallet", sender, "--wallet", RECEIVER])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert [s["reason"] for s in document["skipped"]] == ["outgoing_not_refund"]
    assert len(document["rows"]) == 1


def test_bad_file_is_one_line_error(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"jsonrpc": "2.0", "result": null, "id": 1}')
    result = runner.invoke(cli, ["decode", str(broken), "--wallet", RECEIVER])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: cannot decode: null_result (transaction not found)"
    assert result.stdout == ""


def test_not_json_file(runner: CliRunner, tmp_path: Path) -> None:
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\x00\x01")
    result = runner.invoke(cli, ["decode", str(junk), "--wallet", RECEIVER])
    assert result.exit_code == 1
    assert "cannot decode: not_json" in result.stderr


def test_invalid_wallet_is_a_usage_error(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["decode", str(SOL_MEMO), "--wallet", "not-a-pubkey"])
    assert result.exit_code == 2
    assert "'not-a-pubkey' is not a base58 public key" in result.stderr


def test_wallet_is_required(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["decode", str(SOL_MEMO)])
    assert result.exit_code == 2
    assert "--wallet" in result.stderr


def test_neither_file_nor_signature(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["decode", "no-such-file.json", "--wallet", RECEIVER])
    assert result.exit_code == 2
    assert "neither a file nor a transaction signature" in result.stderr


class _Rpc:
    """A real HTTP JSON-RPC endpoint on 127.0.0.1 that answers with a saved response."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body = body
        self.status = status
        self.requests: list[Any] = []
        rpc = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                rpc.requests.append(json.loads(self.rfile.read(length)))
                self.send_response(rpc.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(rpc.body)))
                self.end_headers()
                self.wfile.write(rpc.body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> _Rpc:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def rpc() -> Iterator[_Rpc]:
    with _Rpc(SOL_MEMO.read_bytes()) as server:
        yield server


def test_fetches_a_signature_over_rpc(rpc: _Rpc, tmp_path: Path) -> None:
    runner = CliRunner(env={"AMOCA_CONFIG_DIR": str(tmp_path), "AMOCA_RPC_URL": rpc.url})
    result = runner.invoke(cli, ["decode", SIGNATURE, "--wallet", RECEIVER, "--encoding", "jsonParsed"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"][0]["amount_raw"] == "1000000"
    (request,) = rpc.requests
    assert request["method"] == "getTransaction"
    assert request["params"] == [
        SIGNATURE,
        {"encoding": "jsonParsed", "maxSupportedTransactionVersion": 0, "commitment": "confirmed"},
    ]


def test_fails_over_to_the_next_endpoint(rpc: _Rpc, tmp_path: Path) -> None:
    with _Rpc(b"busy", status=503) as busy:
        runner = CliRunner(env={"AMOCA_CONFIG_DIR": str(tmp_path), "AMOCA_RPC_URL": f"{busy.url},{rpc.url}"})
        result = runner.invoke(cli, ["decode", SIGNATURE, "--wallet", RECEIVER])
        assert result.exit_code == 0, result.output
        assert len(busy.requests) == 1
    assert len(rpc.requests) == 1


def test_rpc_error_answer_is_reported(tmp_path: Path) -> None:
    error = {
        "jsonrpc": "2.0",
        "error": {"code": -32015, "message": "Transaction version (0) is not supported"},
        "id": 1,
    }
    with _Rpc(json.dumps(error).encode()) as server:
        runner = CliRunner(env={"AMOCA_CONFIG_DIR": str(tmp_path), "AMOCA_RPC_URL": server.url})
        result = runner.invoke(cli, ["decode", SIGNATURE, "--wallet", RECEIVER])
    assert result.exit_code == 1
    assert (
        "cannot decode: rpc_error_envelope (-32015: Transaction version (0) is not supported)"
        in result.stderr
    )
