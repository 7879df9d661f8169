"""The daemon in steady state with many watched wallets (most of them idle agents, there
only to be subscribed): notification → commit latency at a fixed rate, the highest
sustained rate, CPU time per transaction, RSS.

    .venv/bin/python tests/bench/bench_daemon.py [--wallets 10000] [--rate 500] [--seconds 6]
        [--runs 3] [--steps 500,1000,1500,2000,2500,3000] [--step-seconds 4] [--no-rankings]

Processes: the daemon runs in this process; the local cluster (`amoca-indexer localnet`),
the latency workload (`amoca-indexer workload`, the AMOCA mix) and the sustained-rate
sender (this file with ``--send``) each run in their own, so the CPU time and RSS printed
for the daemon are its own. They all share the machine's cores with PostgreSQL (embedded,
non-durable, unless AMOCA_BENCH_DATABASE_URL is set). The cluster's and PostgreSQL's CPU
time (the postmaster and its backends) are read from /proc; the sender reports its own.

1. Latency: ``--runs`` workload runs at ``--rate`` for ``--seconds`` each. Every live
   notification's latency is recorded exactly (not from histogram buckets) together with
   its stages: queued (received → fetch starts), fetch (getTransaction round trip),
   handoff (decode and waiting for the writer), write (one database transaction). The
   first second of each run is warm-up (the run's new agents are subscribed and
   gap-filled then) and is left out. Printed: p50/p99 per run and their medians, with
   what else ran meanwhile: garbage-collector pauses, leaderboard refreshes (the rankings
   job, in PostgreSQL), and how often the writer waited for a lock.
2. Sustained rate: the sender signs plain SOL transfers (with an AMOCA funding memo) to
   random watched wallets BEFORE each step, then sends them at the step's rate in JSON-RPC
   batches for ``--step-seconds``. A rate is sustained when the daemon's backlog does not
   grow over the step (its mean over the last third is at most twice that over the first
   third, plus 10) and it commits everything within 1 s of the last notification.
   Printed per step: sent / notified / committed rates, latency and its stages, backlog,
   and CPU time per transaction of the daemon, the cluster, PostgreSQL and the sender --
   so whichever saturates first shows.
``--no-rankings`` holds the leaderboard job's lock, as a replica that never refreshes
would, to measure without that job's load on PostgreSQL.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psycopg
from benchdb import (  # a sibling module: benchmarks run as scripts from this folder
    create_database,
    drop_database,
    postgres,
    separate_cluster,
)
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.system_program import TransferParams, transfer
from solders.transaction import Transaction

from indexer.config import load_settings
from indexer.daemon import Daemon
from indexer.db import migrations
from indexer.pipeline import Pipeline, WorkUnit
from indexer.rankings import LOCK_KEY as RANKINGS_LOCK
from indexer.sink import WRITER_APPLICATION_NAME

MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
TICKS = os.sysconf("SC_CLK_TCK")
WARM_UP = 1.0  # seconds of each latency run left out


# -- measuring ------------------------------------------------------------------------------
@dataclass(slots=True)
class Trace:
    """One live signature's way through the pipeline (monotonic seconds)."""

    received: float
    fetch_start: float = 0.0
    fetch_end: float = 0.0
    write_start: float = 0.0
    committed: float = 0.0


@dataclass(slots=True)
class Recorder:
    """Wraps the pipeline's public seams (submit, source, writer) to time every stage."""

    traces: dict[str, Trace] = field(default_factory=dict)
    committed_at: list[float] = field(default_factory=list)  # one per committed live unit

    def install(self, pipeline: Pipeline) -> None:
        submit, source, writer = pipeline.submit, pipeline.source, pipeline.writer
        traces, clock = self.traces, time.monotonic

        def timed_submit(unit: WorkUnit) -> Any:
            if unit.source == "live" and unit.received_at is not None:
                for signature in unit.signatures:
                    traces.setdefault(signature, Trace(unit.received_at))
            return submit(unit)

        class TimedSource:
            async def get_transactions(self, signatures: Sequence[str]) -> Sequence[Any]:
                started = clock()
                result = await source.get_transactions(signatures)
                ended = clock()
                for signature in signatures:
                    trace = traces.get(signature)
                    if trace is not None and not trace.committed:
                        trace.fetch_start, trace.fetch_end = started, ended
                return result

        async def timed_writer(batch: Any) -> Any:
            started = clock()
            result = await writer(batch)
            ended = clock()
            for row in batch.rows:
                trace = traces.get(row.signature)
                if trace is not None and not trace.committed:
                    trace.write_start, trace.committed = started, ended
                    self.committed_at.append(ended)
            return result

        pipeline.submit = timed_submit  # type: ignore[method-assign]
        pipeline.source = TimedSource()
        pipeline.writer = timed_writer

    def committed(self, since: float, until: float = float("inf")) -> list[Trace]:
        return [t for t in self.traces.values() if t.committed and since <= t.received < until]


@dataclass(slots=True)
class GcPauses:
    """Garbage-collector pauses of this process: (ended, generation, seconds)."""

    pauses: list[tuple[float, int, float]] = field(default_factory=list)
    _started: float = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses.append((time.monotonic(), info["generation"],
                                time.perf_counter() - self._started))

    def between(self, start: float, end: float) -> str:
        inside = [(g, d) for at, g, d in self.pauses if start <= at <= end]
        if not inside:
            return "no collection"
        full = [d for g, d in inside if g == 2]
        return (f"{len(inside)} collections ({len(full)} full), longest {ms(max(d for _, d in inside))} ms,"
                f" total {ms(sum(d for _, d in inside))} ms")


def stages(traces: Sequence[Trace]) -> str:
    parts = {
        "queued": [t.fetch_start - t.received for t in traces],
        "fetch": [t.fetch_end - t.fetch_start for t in traces],
        "handoff": [t.write_start - t.fetch_end for t in traces],
        "write": [t.committed - t.write_start for t in traces],
    }
    return ", ".join(f"{name} {ms(percentile(v, 0.5))}/{ms(percentile(v, 0.99))}"
                     for name, v in parts.items())


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank on exact values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process (Linux /proc); 0.0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree_cpu(root: int) -> float:
    """CPU seconds of ``root`` (with its reaped children) and of its live children: the
    PostgreSQL server, whose backends are the postmaster's children."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(entry.name) == root:
                total += sum(int(f) for f in fields[11:15]) / TICKS  # utime stime cutime cstime
            elif int(fields[1]) == root:
                total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def postmaster_pid(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
    try:
        return int((Path(row[0]) / "postmaster.pid").read_text().split()[0]) if row else 0
    except (OSError, ValueError):
        return 0


def cluster_pid(port: int) -> int:
    """The `localnet --port <port>` child process (benchdb gives URLs, not the process)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"localnet" in argv and str(port).encode() in argv:
                return int(entry.name)
    return 0


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass(slots=True)
class Sample:
    at: float
    cpu: float
    backlog: int
    committed: int


async def sample_every(interval: float, daemon: Daemon, recorder: Recorder,
                       out: list[Sample]) -> None:
    while True:
        out.append(Sample(time.monotonic(), time.process_time(), daemon.pipeline.backlog,
                          len(recorder.committed_at)))
        await asyncio.sleep(interval)


LockWaits = list[tuple[float, str | None]]  # (when, what the writer waited for, or None)


async def sample_lock_waits(url: str, out: LockWaits) -> None:
    """Every 20 ms: is the daemon's writer (its connection, whatever statement) waiting for
    a lock another transaction holds -- and whose: the first words of the blocker's
    statement (a finality update, the leaderboard refresh, ...)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while True:
            cur = await conn.execute(
                "SELECT left(regexp_replace(b.query, '\\s+', ' ', 'g'), 40)"
                " FROM pg_stat_activity w CROSS JOIN LATERAL unnest(pg_blocking_pids(w.pid)) AS p(pid)"
                " JOIN pg_stat_activity b ON b.pid = p.pid"
                " WHERE w.datname = current_database() AND w.application_name = %s LIMIT 1",
                (WRITER_APPLICATION_NAME,))
            row = await cur.fetchone()
            out.append((time.monotonic(), row[0].strip() if row else None))
            await asyncio.sleep(0.02)


def lock_share(waits: LockWaits, start: float, end: float) -> str:
    inside = [blocker for at, blocker in waits if start <= at <= end]
    waited = Counter(blocker for blocker in inside if blocker is not None)
    most = f" (most behind: {waited.most_common(1)[0][0]!r})" if waited else ""
    return f"{sum(waited.values()) / max(1, len(inside)) * 100:.0f}% of {len(inside)} samples{most}"


def rankings_refreshes(daemon: Daemon) -> tuple[float, float]:
    """(refreshes, seconds) of the leaderboard job so far: it runs in PostgreSQL, beside
    our writes, every few seconds while stats change."""
    count = daemon.registry.get_sample_value("amoca_indexer_rankings_refresh_seconds_count")
    total = daemon.registry.get_sample_value("amoca_indexer_rankings_refresh_seconds_sum")
    return count or 0.0, total or 0.0


def refreshed(daemon: Daemon, since: tuple[float, float]) -> str:
    count, seconds = rankings_refreshes(daemon)
    return f"{count - since[0]:.0f}, {seconds - since[1]:.1f} s"


def between(samples: Sequence[Sample], start: float, end: float) -> tuple[Sample, Sample]:
    inside = [s for s in samples if start <= s.at <= end] or list(samples[-1:])
    return inside[0], inside[-1]


# -- set-up ---------------------------------------------------------------------------------
def register_idle_agents(url: str, count: int) -> list[str]:
    wallets = [str(Keypair().pubkey()) for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
            " SELECT 'idle-' || w, 'Idle', 'idle', 'idle', 'https://example.invalid/a.png', w"
            " FROM unnest(%s::text[]) AS w", (wallets,))
    return wallets


async def wait_until(condition: Callable[[], bool], seconds: float) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the daemon did not reach steady state")


# -- phase 1: latency with the AMOCA workload -----------------------------------------------
async def latency_runs(daemon: Daemon, recorder: Recorder, samples: list[Sample], gc_pauses: GcPauses,
                       lock_waits: LockWaits, http_url: str, url: str, rate: float,
                       seconds: float, runs: int) -> None:
    p50s, p99s, per_row = [], [], []
    for run in range(runs):
        count = int(rate * seconds)
        with tempfile.TemporaryDirectory() as folder:
            workload = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "indexer", "--log-level", "warning", "workload",
                "--rpc-url", http_url, "--rate", str(rate), "--count", str(count),
                "--agents", "5", "--users", "20", "--seed", str(21 + run), "--database-url", url,
                "--truth", str(Path(folder) / "truth.jsonl"), stdout=subprocess.DEVNULL)
            began = time.monotonic()
            refreshes = rankings_refreshes(daemon)
            await workload.wait()
        await daemon.pipeline.wait_idle()
        ended = time.monotonic()
        live = recorder.committed(began, ended)
        if not live:
            print(f"  run {run + 1}: no live notification committed")
            continue
        first = min(t.received for t in live)
        steady = [t for t in live if t.received >= first + WARM_UP]
        last = max(t.received for t in steady)
        latency = [t.committed - t.received for t in steady]
        p50, p99 = percentile(latency, 0.5), percentile(latency, 0.99)
        p50s.append(p50)
        p99s.append(p99)
        start, end = between(samples, first + WARM_UP, last)
        rows = end.committed - start.committed
        cpu_row = (end.cpu - start.cpu) / rows if rows else float("nan")
        per_row.append(cpu_row)
        span = last - first - WARM_UP
        print(f"  run {run + 1}: {len(steady)} live rows after warm-up in {span:.1f} s"
              f" ({len(steady) / max(span, 1e-9):.0f}/s received):"
              f" p50 {ms(p50)} ms, p99 {ms(p99)} ms, max {ms(max(latency))} ms;"
              f" daemon CPU {cpu_row * 1000:.2f} ms/row")
        print(f"         stages p50/p99 ms: {stages(steady)}")
        print(f"         GC: {gc_pauses.between(first + WARM_UP, last)};"
              f" leaderboard refreshes in PostgreSQL: {refreshed(daemon, refreshes)};"
              f" writer waiting on a lock: {lock_share(lock_waits, first + WARM_UP, last)}")
    if p50s:
        print(f"latency at {rate:.0f} tx/s, median of {len(p50s)} runs: p50 {ms(statistics.median(p50s))} ms,"
              f" p99 {ms(statistics.median(p99s))} ms (p99 per run: {', '.join(ms(p) for p in p99s)});"
              f" daemon CPU {statistics.median(per_row) * 1000:.2f} ms/row")


# -- phase 2: the highest sustained rate ----------------------------------------------------
@dataclass(frozen=True, slots=True)
class StepReport:
    rate: float
    started: float
    ended: float
    sent: int
    errors: int
    cpu: float  # the sender's, sending only (signing was before ``started``)
    signing: float  # seconds spent signing the step, before it
    first_error: str | None


async def rpc(session: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method,
                                       "params": params}) as response:
        answer = await response.json(loads=orjson.loads)
    if "error" in answer:
        raise RuntimeError(f"{method}: {answer['error']}")
    return answer["result"]


def funding_transfer(payer: Keypair, wallet: Pubkey, lamports: int, blockhash: Hash) -> bytes:
    """A signed legacy transaction: ``lamports`` from ``payer`` to ``wallet``, AMOCA funding memo."""
    memo = Instruction(MEMO_PROGRAM, b"amoca:1:funding", [AccountMeta(payer.pubkey(), True, False)])
    move = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=wallet, lamports=lamports))
    return bytes(Transaction.new_signed_with_payer([move, memo], payer.pubkey(), [payer], blockhash))


class FundingTransfers:
    """``funding_transfer`` at a third of the cost, so a step of 12,000 is signed well inside
    a blockhash's 6 s life: the message is compiled once, then only its payer, wallet,
    blockhash and amount bytes change (offsets of a legacy message with these four
    accounts). Checked against ``funding_transfer`` on construction."""

    PAYER, WALLET, BLOCKHASH, LAMPORTS = slice(4, 36), slice(36, 68), slice(132, 164), slice(174, 182)

    def __init__(self, payer: Keypair, wallet: Pubkey) -> None:
        self.template = bytearray(bytes(funding_transfer(payer, wallet, 1, Hash.default()))[65:])
        probe = Keypair(), Keypair().pubkey(), 123_456_789, Hash.new_unique()
        if self(*probe) != funding_transfer(*probe):
            raise AssertionError("the transfer template does not match solders' own encoding")

    def __call__(self, payer: Keypair, wallet: Pubkey, lamports: int, blockhash: Hash) -> bytes:
        message = self.template
        message[self.PAYER] = bytes(payer.pubkey())
        message[self.WALLET] = bytes(wallet)
        message[self.BLOCKHASH] = bytes(blockhash)
        message[self.LAMPORTS] = lamports.to_bytes(8, "little")
        return b"\x01" + bytes(payer.sign_message(bytes(message))) + bytes(message)


async def send(http_url: str, wallets: list[Pubkey], steps: list[float], seconds: float,
               go: Callable[[], Awaitable[object]]) -> None:
    """The sender process: prints one JSON line per step (a StepReport)."""
    rng = random.Random(5)
    payers = [Keypair() for _ in range(32)]
    sign = FundingTransfers(payers[0], wallets[0])
    lamports = 1_000_000  # above the rent-exempt minimum: the first transfer creates the account
    async with aiohttp.ClientSession() as session:
        for payer in payers:
            await rpc(session, http_url, "requestAirdrop", [str(payer.pubkey()), 10**16])
        for _ in range(200):  # the airdrops are confirmed within a few slots
            balance = await rpc(session, http_url, "getBalance",
                                [str(payers[-1].pubkey()), {"commitment": "confirmed"}])
            if balance["value"]:
                break
            await asyncio.sleep(0.05)
        for rate in steps:
            await go()  # the daemon has drained the previous step
            blockhash = Hash.from_string((await rpc(session, http_url, "getLatestBlockhash",
                                                    [{"commitment": "confirmed"}]))["value"]["blockhash"])
            signing = time.monotonic()
            requests = []
            for index in range(int(rate * seconds)):
                lamports += 1  # every transfer distinct
                tx = sign(payers[index % len(payers)], rng.choice(wallets), lamports, blockhash)
                requests.append(orjson.dumps({
                    "jsonrpc": "2.0", "id": index, "method": "sendTransaction",
                    "params": [base64.b64encode(tx).decode(), {"encoding": "base64",
                                                               "skipPreflight": True}]}))
            signing = time.monotonic() - signing
            errors, first_error = 0, None
            in_flight: set[asyncio.Task[None]] = set()

            async def post(body: bytes) -> None:
                nonlocal errors, first_error
                async with session.post(http_url, data=body,
                                        headers={"Content-Type": "application/json"}) as response:
                    failed = [a["error"] for a in orjson.loads(await response.read()) if "error" in a]
                errors += len(failed)
                first_error = first_error or (str(failed[0]) if failed else None)

            cpu, started = time.process_time(), time.monotonic()
            sent = 0
            while sent < len(requests):
                due = min(len(requests), int((time.monotonic() - started) * rate) + 1)
                if due > sent:
                    body = b"[" + b",".join(requests[sent:due]) + b"]"
                    sent = due
                    task = asyncio.create_task(post(body))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                await asyncio.sleep(0.005)
            await asyncio.gather(*in_flight)
            ended = time.monotonic()
            report = StepReport(rate, started, ended, sent, errors, time.process_time() - cpu, signing,
                                first_error)
            print(orjson.dumps(report).decode(), flush=True)


async def sustained_steps(daemon: Daemon, recorder: Recorder, samples: list[Sample], http_url: str,
                          cluster: int, postmaster: int, lock_waits: LockWaits,
                          wallets: list[str], steps: list[float], seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        wallets_file = Path(folder) / "wallets.txt"
        wallets_file.write_text("\n".join(wallets))
        others: list[tuple[float, float, float]] = []  # (when, cluster CPU, PostgreSQL CPU)

        async def watch_others() -> None:
            while True:
                others.append((time.monotonic(), process_cpu(cluster), tree_cpu(postmaster)))
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch_others())
        sender = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--send", http_url, str(wallets_file),
            ",".join(f"{r:g}" for r in steps), str(seconds), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE)
        assert sender.stdin is not None
        assert sender.stdout is not None
        reports = []
        refreshes = []
        for _ in steps:
            await daemon.pipeline.wait_idle()
            await asyncio.sleep(1.0)  # notifications of the previous step still on their way
            await daemon.pipeline.wait_idle()
            sender.stdin.write(b"go\n")
            await sender.stdin.drain()
            before = rankings_refreshes(daemon)
            reports.append(StepReport(**orjson.loads(await sender.stdout.readline())))
            await daemon.pipeline.wait_idle()
            refreshes.append(refreshed(daemon, before))
        await sender.wait()
        await daemon.pipeline.wait_idle()
        watcher.cancel()
    best = 0.0
    print("  rate: sent / notified / committed tx/s | latency p50/p99 ms | backlog first/last third"
          " | CPU ms/tx daemon, cluster, PostgreSQL, sender | sustained")
    for step, refreshes_then in zip(reports, refreshes, strict=True):
        window = step.ended - step.started
        live = recorder.committed(step.started, step.ended + 2.0)
        notified = [t for t in recorder.traces.values() if step.started <= t.received < step.ended + 2.0]
        if not live:
            print(f"  {step.rate:.0f}: nothing committed ({step.errors} send errors: {step.first_error})")
            continue
        last_notified = max(t.received for t in notified)
        last_committed = max(t.committed for t in live)
        span = last_notified - min(t.received for t in notified)
        latency = [t.committed - t.received for t in live]
        third = window / 3
        inside = [s for s in samples if step.started <= s.at <= step.ended]
        early = [s.backlog for s in inside if s.at < step.started + third] or [0]
        late = [s.backlog for s in inside if s.at >= step.ended - third] or [0]
        first, last = between(samples, step.started, last_committed)
        rows = last.committed - first.committed
        daemon_cpu = (last.cpu - first.cpu) / rows if rows else float("nan")
        inside_others = [(c, p) for at, c, p in others if step.started <= at <= last_committed + 0.1]
        cluster_ms, postgres_ms = ((inside_others[-1][i] - inside_others[0][i]) / step.sent * 1000
                                   if len(inside_others) > 1 else float("nan") for i in (0, 1))
        growing = statistics.fmean(late) > 2 * statistics.fmean(early) + 10
        drained = last_committed - last_notified <= 1.0 and len(live) >= 0.99 * len(notified)
        kept = not growing and drained and step.errors == 0
        if kept:
            best = max(best, step.sent / window)
        print(f"  {step.rate:.0f}: {step.sent / window:.0f} / {len(notified) / max(span, 1e-9):.0f} /"
              f" {len(live) / max(last_committed - min(t.received for t in live), 1e-9):.0f}"
              f" | {ms(percentile(latency, 0.5))}/{ms(percentile(latency, 0.99))}"
              f" | {statistics.fmean(early):.0f}/{statistics.fmean(late):.0f}"
              f" | {daemon_cpu * 1000:.2f}, {cluster_ms:.2f}, {postgres_ms:.2f},"
              f" {step.cpu / step.sent * 1000:.2f}"
              f" | {'yes' if kept else 'NO'}{f' ({step.errors} send errors)' if step.errors else ''}"
              f" (signed in {step.signing:.1f} s)")
        print(f"        stages p50/p99 ms: {stages(live)}; leaderboard refreshes: {refreshes_then};"
              f" writer waiting on a lock: {lock_share(lock_waits, step.started, last_committed)}")
    print(f"highest sustained rate: {best:.0f} tx/s (steps of {seconds:g} s)")


# -- the benchmark --------------------------------------------------------------------------
async def main(options: argparse.Namespace) -> None:
    with postgres() as admin:
        drop_database(admin, "bench_daemon")  # an interrupted run on a server of yours may have left it
        url = create_database(admin, "bench_daemon")
        with psycopg.connect(url, autocommit=True) as conn:
            migrations.migrate(conn)
        wallets = register_idle_agents(url, options.wallets)
        rankings_holder = psycopg.connect(url, autocommit=True)
        if options.no_rankings:  # another "replica" holds the job's lock and never refreshes
            rankings_holder.execute("SELECT pg_advisory_lock(%s)", (RANKINGS_LOCK,))
        async with separate_cluster() as (http_url, ws_url):
            cluster = cluster_pid(int(http_url.rsplit(":", 1)[1]))
            settings = replace(load_settings(), rpc_urls=(http_url,), ws_url=ws_url, metrics_port=0)
            daemon = Daemon(settings, url, handle_signals=False)
            recorder = Recorder()
            runner = asyncio.create_task(daemon.run())
            started = time.perf_counter()
            print(f"daemon: {options.wallets} idle agent wallets")
            await daemon.active.wait()
            recorder.install(daemon.pipeline)
            await wait_until(lambda: (daemon.registry.get_sample_value("amoca_indexer_ws_subscriptions")
                                      or 0) >= options.wallets, 600)
            print(f"  subscribed to every wallet after {time.perf_counter() - started:.1f} s")
            await wait_until(lambda: daemon.fill_backlog() == 0 and daemon.pipeline.backlog == 0, 600)
            print(f"  start-up gap-fill done after {time.perf_counter() - started:.1f} s")
            gc.collect()
            gc_pauses = GcPauses()
            gc.callbacks.append(gc_pauses)
            samples: list[Sample] = []
            sampler = asyncio.create_task(sample_every(0.05, daemon, recorder, samples))
            lock_waits: LockWaits = []
            lock_sampler = asyncio.create_task(sample_lock_waits(url, lock_waits))
            cpu, at = time.process_time(), time.monotonic()
            await asyncio.sleep(5.0)
            print(f"  idle daemon (reconciliation sweep, finality and slot polling): "
                  f"{(time.process_time() - cpu) / (time.monotonic() - at) * 1000:.0f} ms CPU per second")
            if options.runs:
                print(f"latency: {options.runs} workload runs at {options.rate:g} tx/s, "
                      f"{options.seconds:g} s each")
                await latency_runs(daemon, recorder, samples, gc_pauses, lock_waits, http_url, url,
                                   options.rate, options.seconds, options.runs)
            print(f"daemon RSS {rss_mib():.0f} MiB now, peak "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
                  f"with {options.wallets} watched wallets")
            if options.steps:
                print(f"sustained rate: steps of {options.step_seconds:g} s, transactions signed before each")
                await sustained_steps(daemon, recorder, samples, http_url, cluster, postmaster_pid(url),
                                      lock_waits, wallets, options.steps, options.step_seconds)
            sampler.cancel()
            lock_sampler.cancel()
            # Ended before their connection goes (a query cut short by the cancellation
            # is cancelled on the server too, which needs the socket).
            await asyncio.gather(sampler, lock_sampler, return_exceptions=True)
            daemon.stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(runner), 30)
            except TimeoutError:
                print("the daemon did not stop within 30 s; tasks still running:")
                for task in asyncio.all_tasks():
                    if task is not asyncio.current_task():
                        task.print_stack(limit=4, file=sys.stdout)
                raise
        rankings_holder.close()
        drop_database(admin, "bench_daemon")


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wallets", type=int, default=10_000, help="idle agent wallets watched")
    parser.add_argument("--rate", type=float, default=500.0, help="latency runs' send rate")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each latency run")
    parser.add_argument("--runs", type=int, default=3, help="latency runs (0: none)")
    parser.add_argument("--steps", type=lambda s: [float(r) for r in s.split(",") if r],
                        default=[500.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0],
                        help="sustained-rate steps, tx/s, comma-separated ('': none)")
    parser.add_argument("--no-rankings", action="store_true",
                        help="hold the leaderboard job's lock, so it never runs (its cost apart)")
    parser.add_argument("--step-seconds", type=float, default=4.0,
                        help="length of each step (signing happens before it; blockhashes live 6 s)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--send"]:
        http, wallet_list, rates, step_seconds = sys.argv[2:6]
        targets = [Pubkey.from_string(w) for w in Path(wallet_list).read_text().split()]
        asyncio.run(send(http, targets, [float(r) for r in rates.split(",")], float(step_seconds),
                         go=lambda: asyncio.to_thread(sys.stdin.readline)))
    else:
        asyncio.run(main(arguments(sys.argv[1:])))
