"""The AMOCA workload's plan: which transfers to send and which rows they must produce.

Pure and deterministic: the same :class:`WorkloadConfig` (above all the same ``seed``)
gives the same wallets, tasks, steps and expected rows, byte for byte. No I/O, no
clock; the sender (``workload.py``) only fills in what the chain assigns -- the
signatures -- and checks that the chain agreed with the intent.

The expected rows are derived from INTENT (who pays whom, with which memo), following
DESIGN sections 3-5 as written, never from the project's decoder: the plan is the
independent oracle the end-to-end tests compare the database with.

Balances are simulated (fees included) so every transfer meant to succeed can
succeed: a payer running low gets a top-up step (an airdrop, or a MintTo for USDC)
before it pays, and amounts carry the step index in their lowest digits so no two
steps ever compile to the same message (the same signature) within one blockhash.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from solders.keypair import Keypair

LAMPORTS_PER_SOL = 10**9
USDC_DECIMALS = 6
FEE_LAMPORTS = 5_000  # one signature, no priority fee
RESERVE_LAMPORTS = LAMPORTS_PER_SOL // 100  # keeps every payer rent-exempt after paying
FAILING_LAMPORTS = 1_000 * LAMPORTS_PER_SOL  # far above any balance the poor wallet holds
REFUND_PLACEHOLDER = "<refund_of>"  # in a refund memo until the payment's signature is known

# Traffic kinds (the mix), in the order the CLI lists them.
KINDS = (
    "funding",  # user -> agent, memo amoca:1:funding
    "funding_plain",  # user -> agent, no memo: a funding row
    "payment",  # user -> agent, memo with the agent's task
    "subscription",  # user -> agent, memo with a period
    "refund",  # agent -> user, refund memo naming an earlier payment: refund row, payment refunded
    "usdc_payment",  # transferChecked of the workload's 6-decimal mint, task memo
    "failed",  # a wallet without the lamports, skipPreflight: lands with meta.err
    "agent_to_agent",  # agent -> agent with a task memo: the receiver's payment row only
    "agent_outgoing",  # agent -> user without a refund memo: no row
    "invalid_memo",  # bad version / upper case / bad uuid / another agent's task: funding row
    "multi_leg",  # several legs to one agent (summed), sometimes a leg to a second agent too
    "alt_payment",  # a v0 transaction whose agent wallet comes from an address lookup table
)
SETUP_KIND = "treasury_funding"  # each agent funded once by the treasury, no memo: a funding row
TOPUP_KINDS = ("airdrop", "mint_to")  # keep payers solvent; touch no agent, so no row

DEFAULT_MIX: Mapping[str, int] = {
    "funding": 3, "funding_plain": 2, "payment": 6, "subscription": 2, "refund": 2,
    "usdc_payment": 2, "failed": 1, "agent_to_agent": 1, "agent_outgoing": 1, "invalid_memo": 2,
    "multi_leg": 1, "alt_payment": 2,
}

TransactionType = Literal["funding", "payment", "refund", "subscription"]
Status = Literal["confirmed", "failed", "refunded"]
Asset = Literal["sol", "usdc"]


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    """What to send where. ``count`` transfers (or ``rate * duration`` when ``duration``
    is set) at ``rate`` per second; ``mix`` weights per kind (see ``KINDS``)."""

    rpc_url: str = "http://127.0.0.1:8899"
    rate: float = 50.0
    count: int = 200
    duration: float | None = None
    seed: int = 1
    agents: int = 10
    users: int = 20
    mix: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    usdc: bool = True
    alt: bool = True
    truth_path: Path | None = None
    database_url: str | None = None
    tasks_per_agent: int = 3
    user_lamports: int = 100 * LAMPORTS_PER_SOL
    agent_lamports: int = 20 * LAMPORTS_PER_SOL
    poor_lamports: int = LAMPORTS_PER_SOL // 20
    user_usdc: int = 1_000 * 10**USDC_DECIMALS
    commitment: Literal["confirmed", "finalized"] = "confirmed"  # what "landed" waits for
    max_in_flight: int = 32
    confirm_timeout: float = 60.0

    @property
    def total(self) -> int:
        """The number of traffic steps to plan."""
        if self.duration is not None:
            return max(1, round(self.rate * self.duration))
        return self.count


@dataclass(frozen=True, slots=True)
class Cast:
    """Every wallet the workload uses, derived from the seed (so reruns reuse them)."""

    seed: int
    users: tuple[str, ...]
    agents: tuple[str, ...]
    poor: str  # the wallet whose transfers fail for lack of lamports
    treasury: str  # funds agents, pays set-up, holds the mint and lookup-table authority
    mint: str
    token_accounts: Mapping[str, str]  # wallet -> its token account for ``mint``


@dataclass(frozen=True, slots=True)
class Task:
    id: uuid.UUID
    agent_wallet: str
    user_wallet: str
    title: str
    budget: Decimal


@dataclass(frozen=True, slots=True)
class Leg:
    """One intended movement: lamports (``sol``) or base units of the mint (``usdc``)."""

    asset: Asset
    source: str  # wallet (for usdc, the owner of the source token account)
    destination: str
    amount_raw: int


@dataclass(frozen=True, slots=True)
class ExpectedRow:
    """A ``transactions`` row the database must end up holding (signature still unknown)."""

    step: int
    kind: str
    agent_wallet: str
    counterparty_wallet: str
    transaction_type: TransactionType
    status: Status
    amount_raw: int
    mint: str | None
    task_id: uuid.UUID | None = None
    refund_of_step: int | None = None
    period: str | None = None
    memo: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One transaction (or top-up) to send, with the rows it must produce."""

    index: int
    kind: str
    signer: str  # fee payer and only signer
    legs: tuple[Leg, ...]
    memo: str | None = None  # may hold REFUND_PLACEHOLDER
    version: Literal["legacy", "v0"] = "v0"
    via_lookup_table: bool = False  # agent wallets loaded from the lookup table
    expect_error: bool = False
    refund_of_step: int | None = None  # the payment step a refund names
    rows: tuple[ExpectedRow, ...] = ()

    @property
    def is_topup(self) -> bool:
        return self.kind in TOPUP_KINDS


@dataclass(frozen=True, slots=True)
class Plan:
    cast: Cast
    tasks: tuple[Task, ...]
    setup: tuple[Step, ...]  # treasury fundings, sent before registration and traffic
    steps: tuple[Step, ...]  # traffic (and top-ups), in sending order
    refunded_steps: frozenset[int]

    @property
    def traffic(self) -> tuple[Step, ...]:
        return tuple(s for s in self.steps if not s.is_topup)


@dataclass(frozen=True, slots=True)
class TruthRow:
    """An expected row with its signature: one line of the truth file."""

    signature: str
    agent_wallet: str
    counterparty_wallet: str
    transaction_type: TransactionType
    status: Status
    amount: Decimal
    amount_raw: int
    mint: str | None
    task_id: str | None
    refund_of: str | None
    period: str | None
    memo: str | None
    kind: str

    def to_json(self) -> dict[str, Any]:
        return {
            "signature": self.signature, "agent_wallet": self.agent_wallet,
            "counterparty_wallet": self.counterparty_wallet, "transaction_type": self.transaction_type,
            "status": self.status, "amount": str(self.amount), "amount_raw": self.amount_raw,
            "mint": self.mint, "task_id": self.task_id, "refund_of": self.refund_of,
            "period": self.period, "memo": self.memo, "kind": self.kind,
        }


# -- wallets --------------------------------------------------------------------------
def keypair(seed: int, role: str, index: int) -> Keypair:
    """A keypair fixed by (seed, role, index): reruns with one seed reuse the wallets."""
    return Keypair.from_seed(hashlib.sha256(f"amoca-workload:{seed}:{role}:{index}".encode()).digest())


def cast_for(config: WorkloadConfig) -> Cast:
    seed = config.seed
    users = tuple(str(keypair(seed, "user", i).pubkey()) for i in range(config.users))
    agents = tuple(str(keypair(seed, "agent", i).pubkey()) for i in range(config.agents))
    accounts = {wallet: str(keypair(seed, "usdc", i).pubkey()) for i, wallet in enumerate((*users, *agents))}
    return Cast(seed, users, agents, str(keypair(seed, "poor", 0).pubkey()),
                str(keypair(seed, "treasury", 0).pubkey()), str(keypair(seed, "mint", 0).pubkey()),
                accounts)


def signers_for(config: WorkloadConfig) -> dict[str, Keypair]:
    """wallet (or token account / mint address) -> keypair, for every key the workload signs with."""
    seed = config.seed
    pairs = [keypair(seed, "user", i) for i in range(config.users)]
    pairs += [keypair(seed, "agent", i) for i in range(config.agents)]
    pairs += [keypair(seed, "usdc", i) for i in range(config.users + config.agents)]
    pairs += [keypair(seed, role, 0) for role in ("poor", "treasury", "mint")]
    return {str(k.pubkey()): k for k in pairs}


# -- memos (the protocol of DESIGN section 3, written here independently) --------------
def memo_text(type_: str, *, task: uuid.UUID | None = None, refund_of: str | None = None,
              period: str | None = None) -> str:
    parts = [f"amoca:1:{type_}"]
    if task is not None:
        parts.append(f"task={task}")
    if refund_of is not None:
        parts.append(f"refund_of={refund_of}")
    if period is not None:
        parts.append(f"period={period}")
    return ";".join(parts)


def resolve_memo(memo: str | None, signatures: Mapping[int, str], refund_of_step: int | None) -> str | None:
    if memo is None or refund_of_step is None:
        return memo
    return memo.replace(REFUND_PLACEHOLDER, signatures[refund_of_step])


# -- planning -------------------------------------------------------------------------
def active_kinds(config: WorkloadConfig) -> tuple[str, ...]:
    """The kinds the mix can draw: positive weight, and the features they need enabled."""
    unknown = sorted(set(config.mix) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown workload kinds {unknown}; known: {', '.join(KINDS)}")
    off = {"usdc_payment"} if not config.usdc else set()
    off |= {"alt_payment"} if not config.alt else set()
    kinds = tuple(k for k in KINDS if config.mix.get(k, 0) > 0 and k not in off)
    if not kinds:
        raise ValueError("the mix has no kind with a positive weight")
    return kinds


def plan(config: WorkloadConfig) -> Plan:
    """The whole workload for ``config``: pure, and equal for equal configs."""
    if config.agents < 1 or config.users < 1:
        raise ValueError("the workload needs at least one agent and one user")
    return _Planner(config).run()


@dataclass
class _Payment:
    step: int
    agent: str
    user: str
    lamports: int
    task: uuid.UUID


class _Planner:
    def __init__(self, config: WorkloadConfig) -> None:
        self.config = config
        self.rng = random.Random(f"amoca-workload-plan:{config.seed}")
        self.cast = cast_for(config)
        self.kinds = active_kinds(config)
        self.tasks: list[Task] = []
        self.by_agent: dict[str, list[Task]] = {a: [] for a in self.cast.agents}
        for agent in self.cast.agents:
            for _ in range(config.tasks_per_agent):
                task = Task(uuid.UUID(int=self.rng.getrandbits(128), version=4), agent,
                            self.rng.choice(self.cast.users), f"Workload task {len(self.tasks) + 1}",
                            Decimal(self.rng.randint(1, 50)) / 10)
                self.tasks.append(task)
                self.by_agent[agent].append(task)
        self.lamports: Counter[str] = Counter()
        self.usdc: Counter[str] = Counter()
        for user in self.cast.users:
            self.lamports[user] = config.user_lamports
            self.usdc[user] = config.user_usdc if config.usdc else 0
        self.lamports[self.cast.poor] = config.poor_lamports
        self.steps: list[Step] = []
        self.refundable: list[_Payment] = []
        self.refunded: set[int] = set()

    # -- helpers ------------------------------------------------------------------------
    def _index(self) -> int:
        return len(self.steps)

    def _sol(self, low_milli: int, high_milli: int) -> int:
        """A random amount in milli-SOL, made unique by the step index in its low digits."""
        return self.rng.randint(low_milli, high_milli) * 10**6 + self._index() % 10**6

    def _version(self) -> Literal["legacy", "v0"]:
        return "legacy" if self.rng.random() < 0.5 else "v0"

    def _ensure_lamports(self, wallet: str, needed: int) -> None:
        """Top ``wallet`` up (airdrop step) unless it keeps a margin after spending ``needed``."""
        margin = RESERVE_LAMPORTS + FEE_LAMPORTS + (LAMPORTS_PER_SOL if wallet != self.cast.poor else 0)
        if self.lamports[wallet] - needed >= margin:
            return
        grant = self.config.poor_lamports if wallet == self.cast.poor else self.config.user_lamports
        grant += self._index() % 10**6  # unique airdrop amount: never a duplicate signature
        self.steps.append(Step(self._index(), "airdrop", wallet, (Leg("sol", "faucet", wallet, grant),)))
        self.lamports[wallet] += grant

    def _ensure_usdc(self, wallet: str, needed: int) -> None:
        if self.usdc[wallet] >= needed:
            return
        grant = self.config.user_usdc
        self.steps.append(Step(self._index(), "mint_to", self.cast.treasury,
                               (Leg("usdc", "mint", wallet, grant),)))
        self.usdc[wallet] += grant

    def _spend(self, payer: str, legs: Sequence[Leg], *, fails: bool = False, late: bool = False) -> None:
        """Plan the balances after ``legs``. ``late``: the step is sent only once another
        has landed (a refund waits for its payment), long after the steps planned next;
        its credit is not counted as spendable, or a wallet could spend it before it lands
        (seen at 30,000 steps: a user's transfer failed for lack of a pending refund)."""
        self.lamports[payer] -= FEE_LAMPORTS
        if fails:
            return
        for leg in legs:
            balances = self.lamports if leg.asset == "sol" else self.usdc
            balances[leg.source] -= leg.amount_raw
            if not late:
                balances[leg.destination] += leg.amount_raw

    def _task(self, agent: str) -> uuid.UUID:
        return self.rng.choice(self.by_agent[agent]).id if self.by_agent[agent] else self._orphan_task(agent)

    def _orphan_task(self, agent: str) -> uuid.UUID:
        task = Task(uuid.UUID(int=self.rng.getrandbits(128), version=4), agent, self.cast.users[0],
                    "Workload task", Decimal(1))
        self.tasks.append(task)
        self.by_agent[agent].append(task)
        return task.id

    def _add(self, kind: str, signer: str, legs: Sequence[Leg], rows: Sequence[ExpectedRow], *,
             memo: str | None = None, version: Literal["legacy", "v0"] | None = None,
             via_lookup_table: bool = False, fails: bool = False, refund_of_step: int | None = None) -> int:
        index = self._index()
        self._spend(signer, legs, fails=fails, late=refund_of_step is not None)
        self.steps.append(Step(index, kind, signer, tuple(legs), memo,
                               version or ("v0" if via_lookup_table else self._version()),
                               via_lookup_table, fails, refund_of_step, tuple(rows)))
        return index

    def _row(self, kind: str, agent: str, counterparty: str, type_: TransactionType, amount_raw: int, *,
             mint: str | None = None, status: Status = "confirmed", task: uuid.UUID | None = None,
             refund_of_step: int | None = None, period: str | None = None,
             memo: str | None = None) -> ExpectedRow:
        return ExpectedRow(self._index(), kind, agent, counterparty, type_, status, amount_raw, mint, task,
                           refund_of_step, period, memo)

    # -- the order ----------------------------------------------------------------------
    def run(self) -> Plan:
        setup = []
        for n, agent in enumerate(self.cast.agents):
            amount = self.config.agent_lamports + n
            setup.append(Step(-1 - n, SETUP_KIND, self.cast.treasury,
                              (Leg("sol", self.cast.treasury, agent, amount),), version="legacy",
                              rows=(ExpectedRow(-1 - n, SETUP_KIND, agent, self.cast.treasury, "funding",
                                                "confirmed", amount, None),)))
            self.lamports[agent] += amount
        total = self.config.total
        order = self._coverage()[:total]
        weights = [self.config.mix[k] for k in self.kinds]
        order += self.rng.choices(self.kinds, weights, k=total - len(order))
        for kind in order:
            getattr(self, f"_plan_{kind}")()
        return Plan(self.cast, tuple(self.tasks), tuple(setup), tuple(self.steps), frozenset(self.refunded))

    def _coverage(self) -> list[str]:
        """Every active kind once, shuffled, a refund after the first payment: short runs
        still exercise the whole mix."""
        kinds = list(self.kinds)
        self.rng.shuffle(kinds)
        if "refund" in kinds and "payment" in kinds and kinds.index("refund") < kinds.index("payment"):
            i, j = kinds.index("refund"), kinds.index("payment")
            kinds[i], kinds[j] = kinds[j], kinds[i]
        return kinds

    # -- kinds --------------------------------------------------------------------------
    def _pair(self) -> tuple[str, str]:
        return self.rng.choice(self.cast.users), self.rng.choice(self.cast.agents)

    def _user_transfer(self, kind: str, type_: TransactionType, *, memo: bool = True,
                       with_task: bool = False, period: str | None = None,
                       via_lookup_table: bool = False) -> None:
        user, agent = self._pair()
        amount = self._sol(1, 500)
        self._ensure_lamports(user, amount)
        task = self._task(agent) if with_task else None
        text = memo_text(type_, task=task, period=period) if memo else None
        row = self._row(kind, agent, user, type_, amount, task=task, period=period, memo=text)
        index = self._add(kind, user, [Leg("sol", user, agent, amount)], [row], memo=text,
                          via_lookup_table=via_lookup_table)
        if task is not None:
            self.refundable.append(_Payment(index, agent, user, amount, task))

    def _plan_funding(self) -> None:
        self._user_transfer("funding", "funding")

    def _plan_funding_plain(self) -> None:
        self._user_transfer("funding_plain", "funding", memo=False)

    def _plan_payment(self) -> None:
        self._user_transfer("payment", "payment", with_task=True)

    def _plan_alt_payment(self) -> None:
        self._user_transfer("alt_payment", "payment", with_task=True, via_lookup_table=True)

    def _plan_subscription(self) -> None:
        period = f"{self.rng.choice((2025, 2026))}-{self.rng.randint(1, 12):02d}"
        self._user_transfer("subscription", "subscription", period=period)

    def _plan_refund(self) -> None:
        solvent = [p for p in self.refundable
                   if self.lamports[p.agent] - p.lamports >= LAMPORTS_PER_SOL + RESERVE_LAMPORTS]
        if not solvent:
            self._plan_payment()  # nothing to refund yet: the mix's refund becomes a payment
            return
        paid = self.rng.choice(solvent)
        self.refundable.remove(paid)
        memo = memo_text("refund", task=paid.task, refund_of=REFUND_PLACEHOLDER)
        row = self._row("refund", paid.agent, paid.user, "refund", paid.lamports, task=paid.task,
                        refund_of_step=paid.step, memo=memo)
        self._add("refund", paid.agent, [Leg("sol", paid.agent, paid.user, paid.lamports)], [row],
                  memo=memo, refund_of_step=paid.step)
        self.refunded.add(paid.step)

    def _plan_usdc_payment(self) -> None:
        user, agent = self._pair()
        units = self.rng.randint(1, 5_000) * 1_000 + self._index() % 1_000  # up to ~5 USDC
        self._ensure_usdc(user, units)
        self._ensure_lamports(user, 0)
        task = self._task(agent)
        memo = memo_text("payment", task=task)
        row = self._row("usdc_payment", agent, user, "payment", units, mint=self.cast.mint, task=task,
                        memo=memo)
        self._add("usdc_payment", user, [Leg("usdc", user, agent, units)], [row], memo=memo)

    def _plan_failed(self) -> None:
        poor, agent = self.cast.poor, self.rng.choice(self.cast.agents)
        self._ensure_lamports(poor, 0)
        amount = FAILING_LAMPORTS + self._index()
        if self.rng.random() < 0.5:
            type_: TransactionType = "funding"
            task = None
            memo = memo_text("funding")
        else:
            type_, task = "payment", self._task(agent)
            memo = memo_text("payment", task=task)
        row = self._row("failed", agent, poor, type_, amount, status="failed", task=task, memo=memo)
        self._add("failed", poor, [Leg("sol", poor, agent, amount)], [row], memo=memo, fails=True)

    def _plan_agent_to_agent(self) -> None:
        if len(self.cast.agents) < 2:
            self._plan_payment()
            return
        payer, agent = self.rng.sample(self.cast.agents, 2)
        amount = self._sol(1, 100)
        if self.lamports[payer] - amount < LAMPORTS_PER_SOL + RESERVE_LAMPORTS:
            self._plan_payment()
            return
        task = self._task(agent)
        memo = memo_text("payment", task=task)
        row = self._row("agent_to_agent", agent, payer, "payment", amount, task=task, memo=memo)
        self._add("agent_to_agent", payer, [Leg("sol", payer, agent, amount)], [row], memo=memo)

    def _plan_agent_outgoing(self) -> None:
        user, agent = self._pair()
        amount = self._sol(1, 50)
        if self.lamports[agent] - amount < LAMPORTS_PER_SOL + RESERVE_LAMPORTS:
            self._plan_funding()
            return
        memo = self.rng.choice((None, memo_text("funding"), memo_text("payment", task=self._task(agent))))
        self._add("agent_outgoing", agent, [Leg("sol", agent, user, amount)], [], memo=memo)

    def _plan_invalid_memo(self) -> None:
        user, agent = self._pair()
        others = [a for a in self.cast.agents if a != agent]
        choices = ["amoca:2:payment", "AMOCA:1:payment", "amoca:1:payment;task=not-a-uuid",
                   "amoca:1:gift", "amoca:1:subscription;period=2026-13"]
        if others:
            choices.append(memo_text("payment", task=self._task(self.rng.choice(others))))
        memo = self.rng.choice(choices)
        amount = self._sol(1, 500)
        self._ensure_lamports(user, amount)
        row = self._row("invalid_memo", agent, user, "funding", amount, memo=memo)
        self._add("invalid_memo", user, [Leg("sol", user, agent, amount)], [row], memo=memo)

    def _plan_multi_leg(self) -> None:
        """Two or three legs to one agent (one summed row); sometimes one more leg to a
        second agent, whose task check fails so its row is a funding."""
        user, agent = self._pair()
        amounts = [self._sol(1, 200) for _ in range(self.rng.randint(2, 3))]
        task = self._task(agent)
        memo = memo_text("payment", task=task)
        legs = [Leg("sol", user, agent, a) for a in amounts]
        others = [a for a in self.cast.agents if a != agent]
        second = self.rng.choice(others) if others and self.rng.random() < 0.5 else None
        if second is not None:
            legs.append(Leg("sol", user, second, self._sol(1, 100)))
        self._ensure_lamports(user, sum(leg.amount_raw for leg in legs))  # before the rows: may add a step
        rows = [self._row("multi_leg", agent, user, "payment", sum(amounts), task=task, memo=memo)]
        if second is not None:
            rows.append(self._row("multi_leg", second, user, "funding", legs[-1].amount_raw, memo=memo))
        self._add("multi_leg", user, legs, rows, memo=memo, via_lookup_table=self.config.alt
                  and self.rng.random() < 0.5)


# -- truth ----------------------------------------------------------------------------
def amount_of(raw: int, mint: str | None) -> Decimal:
    """Exact token units: lamports / 1e9 for SOL, base units / 1e6 for the USDC mint."""
    return Decimal(raw).scaleb(-(USDC_DECIMALS if mint else 9))


def truth_rows(plan_: Plan, signatures: Mapping[int, str]) -> tuple[TruthRow, ...]:
    """The expected rows once every step's signature is known, sorted by (signature, agent)."""
    rows = []
    for step in (*plan_.setup, *plan_.steps):
        for row in step.rows:
            status: Status = "refunded" if row.step in plan_.refunded_steps else row.status
            refund_of = signatures[row.refund_of_step] if row.refund_of_step is not None else None
            rows.append(TruthRow(
                signatures[row.step], row.agent_wallet, row.counterparty_wallet, row.transaction_type,
                status, amount_of(row.amount_raw, row.mint), row.amount_raw, row.mint,
                str(row.task_id) if row.task_id else None, refund_of, row.period,
                resolve_memo(row.memo, signatures, row.refund_of_step), row.kind))
    rows.sort(key=lambda r: (r.signature, r.agent_wallet))
    return tuple(rows)


def counts(rows: Sequence[TruthRow]) -> dict[str, int]:
    """``type/status`` -> number of rows, sorted by key."""
    counter = Counter(f"{r.transaction_type}/{r.status}" for r in rows)
    return dict(sorted(counter.items()))
