"""amoca-indexer: keeps the AMOCA marketplace database true to the Solana chain."""

__version__ = "0.1.0"
