"""Structural fuzzing: real responses with one field deleted or replaced by random JSON.

Whatever a node (or a proxy, or a bug) sends, the decoder either decodes it or raises
``DecodeError`` with a documented reason: never another exception, which would crash
the pipeline instead of dead-lettering the payload.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_decode_fixtures import GROUND_TRUTH, RESPONSE_FILES, TRANSACTIONS

from indexer.decode import DECODE_ERROR_REASONS, decode_transaction
from indexer.errors import DecodeError

DOCUMENTS = [json.loads((TRANSACTIONS / name).read_bytes()) for name in RESPONSE_FILES]
WATCHED = {wallet for truth in GROUND_TRUTH.values() for wallet in truth["lamport_deltas"]}

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.text(max_size=8)
    | st.sampled_from(["base64", "legacy", "11111111111111111111111111111111"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    paths = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            paths.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            paths.extend(_paths(value, (*prefix, index)))
    return paths


PATHS = [_paths(document)[1:] for document in DOCUMENTS]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_responses_decode_or_raise_decode_error(data: st.DataObject) -> None:
    which = data.draw(st.integers(0, len(DOCUMENTS) - 1))
    document = copy.deepcopy(DOCUMENTS[which])
    path = data.draw(st.sampled_from(PATHS[which]))
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_json)
    reason = None
    try:
        decode_transaction(document, WATCHED)
    except DecodeError as exc:
        reason = exc.reason
    assert reason is None or reason in DECODE_ERROR_REASONS
