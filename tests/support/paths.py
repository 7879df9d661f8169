"""Where tests find the repository and the shared specs beside it."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """`../shared` beside the repository (or AMOCA_SHARED_DIR)."""
    return Path(os.environ.get("AMOCA_SHARED_DIR") or REPO_ROOT.parent / "shared")
