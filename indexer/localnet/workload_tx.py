"""Transactions of the AMOCA workload, built with solders from a planned step.

Pure: a step, the keys and a blockhash in, a signed transaction out. Instruction data
for the SPL Token and Address Lookup Table programs is laid out here by hand (their
documented wire formats), so the workload depends on no client library of those
programs and uses only what every cluster has loaded: System, SPL Token, Memo v1, ALT.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from solders.address_lookup_table_account import (
    ID as LOOKUP_TABLE_PROGRAM,
)
from solders.address_lookup_table_account import (
    AddressLookupTableAccount,
    derive_lookup_table_address,
)
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import Message, MessageV0
from solders.pubkey import Pubkey
from solders.system_program import ID as SYSTEM_PROGRAM
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction

from indexer.localnet.workload_plan import USDC_DECIMALS, Cast, Step

MEMO_V1 = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
MINT_SIZE = 82
TOKEN_ACCOUNT_SIZE = 165
EXTEND_CHUNK = 20  # addresses per ExtendLookupTable: keeps the transaction under 1232 bytes

# SPL Token instruction tags
_MINT_TO = 7
_TRANSFER_CHECKED = 12
_INITIALIZE_ACCOUNT3 = 18
_INITIALIZE_MINT2 = 20
# Address Lookup Table instruction indexes (u32 LE)
_CREATE_LOOKUP_TABLE = 0
_EXTEND_LOOKUP_TABLE = 2


def _meta(key: Pubkey, *, signer: bool = False, writable: bool = False) -> AccountMeta:
    return AccountMeta(key, signer, writable)


def memo(text: str, signer: Pubkey) -> Instruction:
    return Instruction(MEMO_V1, text.encode(), [_meta(signer, signer=True)])


def sol_transfer(source: Pubkey, destination: Pubkey, lamports: int) -> Instruction:
    return transfer(TransferParams(from_pubkey=source, to_pubkey=destination, lamports=lamports))


def transfer_checked(source: Pubkey, mint: Pubkey, destination: Pubkey, owner: Pubkey, amount: int,
                     decimals: int = USDC_DECIMALS) -> Instruction:
    data = struct.pack("<BQB", _TRANSFER_CHECKED, amount, decimals)
    return Instruction(TOKEN_PROGRAM, data, [
        _meta(source, writable=True), _meta(mint), _meta(destination, writable=True),
        _meta(owner, signer=True)])


def mint_to(mint: Pubkey, account: Pubkey, authority: Pubkey, amount: int) -> Instruction:
    data = struct.pack("<BQ", _MINT_TO, amount)
    return Instruction(TOKEN_PROGRAM, data, [
        _meta(mint, writable=True), _meta(account, writable=True), _meta(authority, signer=True)])


def create_mint(payer: Pubkey, mint: Pubkey, authority: Pubkey, rent: int,
                decimals: int = USDC_DECIMALS) -> list[Instruction]:
    """System createAccount + InitializeMint2 (no freeze authority)."""
    data = struct.pack("<BB32sB", _INITIALIZE_MINT2, decimals, bytes(authority), 0)
    return [
        create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=mint, lamports=rent,
                                           space=MINT_SIZE, owner=TOKEN_PROGRAM)),
        Instruction(TOKEN_PROGRAM, data, [_meta(mint, writable=True)]),
    ]


def create_token_account(payer: Pubkey, account: Pubkey, mint: Pubkey, owner: Pubkey,
                         rent: int) -> list[Instruction]:
    """System createAccount + InitializeAccount3 (the ATA program is not everywhere)."""
    data = struct.pack("<B32s", _INITIALIZE_ACCOUNT3, bytes(owner))
    return [
        create_account(CreateAccountParams(from_pubkey=payer, to_pubkey=account, lamports=rent,
                                           space=TOKEN_ACCOUNT_SIZE, owner=TOKEN_PROGRAM)),
        Instruction(TOKEN_PROGRAM, data, [_meta(account, writable=True), _meta(mint)]),
    ]


def create_lookup_table(authority: Pubkey, payer: Pubkey, recent_slot: int) -> tuple[Instruction, Pubkey]:
    table, bump = derive_lookup_table_address(authority, recent_slot)
    data = struct.pack("<IQB", _CREATE_LOOKUP_TABLE, recent_slot, bump)
    return Instruction(LOOKUP_TABLE_PROGRAM, data, [
        _meta(table, writable=True), _meta(authority, signer=True), _meta(payer, signer=True, writable=True),
        _meta(SYSTEM_PROGRAM)]), table


def extend_lookup_table(table: Pubkey, authority: Pubkey, payer: Pubkey,
                        addresses: Sequence[Pubkey]) -> Instruction:
    data = struct.pack("<IQ", _EXTEND_LOOKUP_TABLE, len(addresses)) + b"".join(bytes(a) for a in addresses)
    return Instruction(LOOKUP_TABLE_PROGRAM, data, [
        _meta(table, writable=True), _meta(authority, signer=True), _meta(payer, signer=True, writable=True),
        _meta(SYSTEM_PROGRAM)])


def slot_from_slot_hashes(data: bytes) -> int:
    """The newest slot in the SlotHashes sysvar (u64 count, then (slot, hash) newest first)."""
    if len(data) < 16 or struct.unpack_from("<Q", data, 0)[0] == 0:
        raise ValueError("SlotHashes sysvar is empty")
    slot: int = struct.unpack_from("<Q", data, 8)[0]
    return slot


def sign(payer: Keypair, instructions: Sequence[Instruction], signers: Sequence[Keypair], blockhash: Hash,
         *, version: str = "v0",
         lookup_tables: Sequence[AddressLookupTableAccount] = ()) -> VersionedTransaction:
    if version == "legacy":
        message: Message | MessageV0 = Message.new_with_blockhash(
            list(instructions), payer.pubkey(), blockhash)
    else:
        message = MessageV0.try_compile(payer.pubkey(), list(instructions), list(lookup_tables), blockhash)
    return VersionedTransaction(message, list(signers))


def step_transaction(step: Step, cast: Cast, keys: Mapping[str, Keypair], blockhash: Hash, *,
                     memo_text: str | None, lookup_table: AddressLookupTableAccount | None
                     ) -> VersionedTransaction:
    """The signed transaction of a planned step (not a top-up airdrop)."""
    payer = keys[step.signer]
    mint = Pubkey.from_string(cast.mint)
    instructions: list[Instruction] = []
    for leg in step.legs:
        destination = Pubkey.from_string(leg.destination)
        if step.kind == "mint_to":
            account = Pubkey.from_string(cast.token_accounts[leg.destination])
            instructions.append(mint_to(mint, account, payer.pubkey(), leg.amount_raw))
        elif leg.asset == "usdc":
            instructions.append(transfer_checked(
                Pubkey.from_string(cast.token_accounts[leg.source]), mint,
                Pubkey.from_string(cast.token_accounts[leg.destination]), payer.pubkey(), leg.amount_raw))
        else:
            instructions.append(sol_transfer(Pubkey.from_string(leg.source), destination, leg.amount_raw))
    if memo_text is not None:
        instructions.append(memo(memo_text, payer.pubkey()))
    tables = [lookup_table] if step.via_lookup_table and lookup_table is not None else []
    if step.via_lookup_table and not tables:
        raise ValueError(f"step {step.index} needs the lookup table, none was created")
    return sign(payer, instructions, [payer], blockhash, version=step.version, lookup_tables=tables)
