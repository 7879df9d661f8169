"""The local Solana cluster: LiteSVM behind real JSON-RPC and PubSub endpoints."""

from indexer.localnet.ledger import Ledger
from indexer.localnet.server import Faults, Localnet, LocalnetConfig

__all__ = ["Faults", "Ledger", "Localnet", "LocalnetConfig"]
