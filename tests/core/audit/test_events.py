"""The event hash is SHA-256 over the canonical JSON of the event document, however it
is computed: by ``event_hash`` (append, export) or by the verifier's inlined copy."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from core.audit.events import canonical_payload, event_document, event_hash, event_preimage
from core.audit.verify import hashed
from core.signing import canonical_json

# Any Unicode a JSON string can carry in UTF-8: quotes, backslashes, control characters,
# non-ASCII, astral planes (no lone surrogates, which UTF-8 cannot encode).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    seq=st.integers(0, 2**40),
    at=text,
    actor=text,
    action=text,
    entity_type=text,
    entity_id=text,
    payload=st.dictionaries(text, json_values, max_size=5),
    prev=text,
)
def test_every_way_of_hashing_an_event_agrees(
    seq: int,
    at: str,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    payload: dict,
    prev: str,
) -> None:
    document = event_document(seq, at, actor, action, entity_type, entity_id, payload, prev)
    reference = hashlib.sha256(canonical_json(document)).hexdigest()
    payload_text = canonical_payload(payload)
    fields = (seq, at, actor, action, entity_type, entity_id, payload_text, prev)
    assert event_preimage(*fields).encode() == canonical_json(document)
    assert event_hash(*fields) == reference
    ((_, _, _, recomputed),) = hashed([(*fields, "h")])
    assert recomputed == reference
