"""Recompute the audit log from its rows: every hash, every link, every signed checkpoint.

One streaming pass, shared by the server (rows from the database) and the offline
verifier (rows from an export file and nothing else but the public key). It keeps only a
Merkle frontier of log2(n) hashes, so a million events need no more memory than ten.

What each check catches:

- a row whose contents no longer match its ``hash`` (edited by hand) → that row;
- a missing position (a row deleted) → the first missing ``seq``;
- a row that does not link to its predecessor → the predecessor (it was rewritten with
  a recomputed hash, or this row's ``prev_hash`` was);
- a suffix rewritten *consistently* (every hash recomputed) → the Merkle root no longer
  matches a signed checkpoint; the first bad position is reported as the end of the
  last checkpoint that still matched;
- rows deleted from the end → a signed checkpoint is larger than the log;
- a forged or altered checkpoint → its signature.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.audit.events import GENESIS_HASH, at_iso, event_hash
from core.audit.merkle import LEAF_PREFIX, NODE_PREFIX, CompactTree
from core.signing import (
    CHECKPOINT_CONTEXT,
    key_id_of,
    load_public_key,
    signed_message,
    verify,
)

EXPORT_FORMAT = "expunge-audit-export/v1"

# A stored event: (seq, at, actor, action, entity_type, entity_id, payload_text,
# prev_hash, hash); ``at`` is a datetime or already its ISO string.
EventRow = tuple[int, "datetime | str", str, str, str, str, str, str, str]
# What the chain check consumes: (seq, prev_hash, stored hash, hash recomputed from the
# event's contents).
HashedEvent = tuple[int, str, str, str]


def hashed(rows: Iterable[EventRow]) -> Iterator[HashedEvent]:
    """Recompute each stored event's hash from its fields.

    ``events.event_preimage`` written out inline: two Python calls per event were a
    third of the time of verifying a million events. A test holds the two to the same
    bytes, tricky strings included.
    """
    enc = encode_basestring
    sha = hashlib.sha256
    for seq, at, actor, action, entity_type, entity_id, payload, prev, h in rows:
        if at.__class__ is not str:
            at = at_iso(at)  # type: ignore[arg-type]
        text = (
            f'{{"action":{enc(action)},"actor":{enc(actor)},"at":{enc(at)},'
            f'"entity_id":{enc(entity_id)},"entity_type":{enc(entity_type)},'
            f'"payload":{payload},"prev_hash":{enc(prev)},"seq":{int(seq)}}}'
        )
        yield seq, prev, h, sha(text.encode("utf-8")).hexdigest()


@dataclass
class VerifyReport:
    """The verdict. ``size`` is the number of events read (all of them when ``ok``)."""

    ok: bool
    size: int
    first_bad_seq: int | None = None
    reason: str = "ok"
    root_hash: str | None = None
    checkpoints_verified: int = 0
    checkpoints_unverified: int = 0
    # Events covered by a checkpoint whose signature was checked: beyond this, only the
    # hash chain vouches for the log (whoever can write the database could rewrite it).
    signed_size: int = 0
    key_ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CheckpointRecord:
    """A signed tree head as stored and exported (``at`` is the exact signed string)."""

    tree_size: int
    root_hash: str
    signature: str
    key_id: str
    at: str
    id: int | None = None

    def document(self) -> dict[str, Any]:
        return checkpoint_document(self.tree_size, self.root_hash, self.at, self.key_id)


def checkpoint_document(tree_size: int, root_hash: str, at: str, key_id: str) -> dict[str, Any]:
    """What a checkpoint signature covers (under ``CHECKPOINT_CONTEXT``)."""
    return {"tree_size": tree_size, "root_hash": root_hash, "at": at, "key_id": key_id}


def checkpoint_signature_ok(cp: CheckpointRecord, key: Ed25519PublicKey) -> bool:
    try:
        signature = base64.b64decode(cp.signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return verify(key, signed_message(CHECKPOINT_CONTEXT, cp.document()), signature)


def trusted_keys(public_keys: Iterable[str | bytes | Ed25519PublicKey]) -> dict[str, Any]:
    keys: dict[str, Ed25519PublicKey] = {}
    for pem in public_keys:
        key = pem if isinstance(pem, Ed25519PublicKey) else load_public_key(pem)
        keys[key_id_of(key)] = key
    return keys


class _Failed(Exception):
    def __init__(self, first_bad_seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.first_bad_seq = first_bad_seq
        self.reason = reason


class ChainVerifier:
    """Feed it the events in ``seq`` order and the checkpoints; it says what is wrong first.

    ``require_trusted_key``: a checkpoint signed by a key not in ``public_keys`` fails the
    check. Both the server and the offline verifier run this way: otherwise whoever can
    write the database could rewrite events and re-sign nothing, just relabel the
    checkpoints with an unknown key id and recompute their roots. Without it (no key at
    hand) such checkpoints have their roots checked and are counted as unverified.
    """

    def __init__(
        self,
        public_keys: Iterable[str | bytes | Ed25519PublicKey] = (),
        *,
        require_trusted_key: bool = False,
    ) -> None:
        self.keys = trusted_keys(public_keys)
        self.require_trusted_key = require_trusted_key
        self.pending: deque[CheckpointRecord] = deque()
        self.tree = CompactTree()
        self.last_hash = GENESIS_HASH
        self.verified = 0
        self.unverified = 0
        self.last_good_checkpoint = 0
        self.signed_size = 0

    @property
    def size(self) -> int:
        return self.tree.size

    def add_checkpoint(self, cp: CheckpointRecord) -> None:
        """Queue a checkpoint; it is checked once the log reaches its size."""
        if cp.tree_size < self.size:
            raise _Failed(
                None,
                f"checkpoint of size {cp.tree_size} comes after event {self.size - 1}; "
                "the export is out of order",
            )
        if self.pending and cp.tree_size < self.pending[-1].tree_size:
            ordered = sorted([*self.pending, cp], key=lambda c: c.tree_size)
            self.pending.clear()  # in place: ``feed`` holds a reference to this deque
            self.pending.extend(ordered)
        else:
            self.pending.append(cp)
        self._check_due()

    def _check_due(self) -> None:
        pending = self.pending
        while pending and pending[0].tree_size == self.tree.size:
            self._check(pending.popleft())

    def _check(self, cp: CheckpointRecord) -> None:
        root = self.tree.root().hex()
        key = self.keys.get(cp.key_id)
        if key is None:
            if self.require_trusted_key:
                raise _Failed(
                    None,
                    f"checkpoint of size {cp.tree_size} is signed by key {cp.key_id!r}, "
                    "which is not among the public keys given",
                )
        elif not checkpoint_signature_ok(cp, key):
            raise _Failed(
                None,
                f"checkpoint of size {cp.tree_size} (at {cp.at}) has an invalid signature: "
                "the checkpoint itself was altered or forged",
            )
        if root != cp.root_hash:
            raise _Failed(
                self.last_good_checkpoint,
                f"the first {cp.tree_size} events do not match the signed checkpoint of that "
                f"size (at {cp.at}): events from position {self.last_good_checkpoint} on were "
                "rewritten with recomputed hashes",
            )
        if key is None:
            self.unverified += 1
        else:
            self.verified += 1
            self.signed_size = max(self.signed_size, cp.tree_size)
        self.last_good_checkpoint = cp.tree_size

    def feed(self, rows: Iterable[HashedEvent]) -> None:
        """Check a run of events; raises ``_Failed`` at the first problem.

        The hot loop of verification (a million turns for a million events): the Merkle
        frontier update of ``CompactTree.append`` is written out inline here.
        """
        tree = self.tree
        stack = tree._stack
        pending = self.pending
        last = self.last_hash
        size = tree.size
        fromhex = bytes.fromhex
        sha = hashlib.sha256
        try:
            for seq, prev, h, recomputed in rows:
                if seq != size:
                    if seq > size:
                        raise _Failed(
                            size,
                            f"event {size} is missing: the next event present is {seq}",
                        )
                    raise _Failed(seq, f"event {seq} appears twice or out of order")
                if recomputed != h:
                    raise _Failed(
                        seq, f"event {seq} was altered: its contents do not match its hash"
                    )
                if prev != last:
                    if seq == 0:
                        raise _Failed(0, "event 0 does not start the chain (prev_hash is not 0)")
                    raise _Failed(
                        seq - 1,
                        f"event {seq} does not link to event {seq - 1}: event {seq - 1} was "
                        f"rewritten with a recomputed hash, or event {seq}'s prev_hash was",
                    )
                try:
                    node = sha(LEAF_PREFIX + fromhex(h)).digest()
                except ValueError:
                    raise _Failed(seq, f"event {seq} has a malformed hash {h!r}") from None
                s = size
                while s & 1:  # merge the perfect subtrees this leaf completes
                    node = sha(NODE_PREFIX + stack.pop() + node).digest()
                    s >>= 1
                stack.append(node)
                last = h
                size += 1
                # Kept current every turn: an export's checkpoint line is read (and
                # queued) by the row generator between two turns of this loop.
                tree.size = size
                if pending and pending[0].tree_size == size:
                    self._check_due()
        finally:
            tree.size = size
            self.last_hash = last

    def finish(self) -> None:
        self._check_due()
        if self.pending:
            cp = self.pending[0]
            raise _Failed(
                self.size,
                f"the log ends at {self.size} events but a checkpoint signed at {cp.at} "
                f"covers {cp.tree_size}: events from {self.size} on were deleted",
            )

    def _ok_reason(self) -> str:
        text = f"{self.size} events recomputed, every hash and link intact"
        if self.verified:
            text += (
                f"; {self.verified} signed checkpoint(s) match, the latest covering the "
                f"first {self.signed_size} events"
            )
        if self.unverified:
            text += f"; {self.unverified} checkpoint(s) by other keys match by root only"
        if self.signed_size < self.size:
            text += (
                f"; events {self.signed_size}..{self.size - 1} are not yet under a signed "
                "checkpoint"
            )
        return text

    def report(self, failure: _Failed | None = None) -> VerifyReport:
        if failure is not None:
            return VerifyReport(
                ok=False,
                size=self.size,
                first_bad_seq=failure.first_bad_seq,
                reason=failure.reason,
                checkpoints_verified=self.verified,
                checkpoints_unverified=self.unverified,
                signed_size=self.signed_size,
                key_ids=sorted(self.keys),
            )
        return VerifyReport(
            ok=True,
            size=self.size,
            reason=self._ok_reason(),
            root_hash=self.tree.root().hex(),
            checkpoints_verified=self.verified,
            checkpoints_unverified=self.unverified,
            signed_size=self.signed_size,
            key_ids=sorted(self.keys),
        )


def run_verifier(
    verifier: ChainVerifier, rows: Iterable[EventRow], checkpoints: Sequence[CheckpointRecord]
) -> VerifyReport:
    """Checkpoints known up front (the database case), then one pass over the rows."""
    try:
        for cp in sorted(checkpoints, key=lambda c: c.tree_size):
            verifier.add_checkpoint(cp)
        verifier.feed(hashed(rows))
        verifier.finish()
    except _Failed as failure:
        return verifier.report(failure)
    return verifier.report()


# --------------------------------------------------------------------------- exports


class ExportFormatError(ValueError):
    pass


EVENT_PREFIX = '{"event":'
HASH_INFIX = ',"hash":"'


def event_line(preimage: str, h: str) -> str:
    """An exported event: its canonical document (the exact bytes its hash is over), then
    the hash. ``verify_export`` hashes that slice of the line as it is."""
    return f'{EVENT_PREFIX}{preimage}{HASH_INFIX}{h}"}}\n'


def checkpoint_from_json(obj: dict[str, Any]) -> CheckpointRecord:
    try:
        return CheckpointRecord(
            tree_size=int(obj["tree_size"]),
            root_hash=str(obj["root_hash"]),
            signature=str(obj["signature"]),
            key_id=str(obj["key_id"]),
            at=str(obj["at"]),
            id=obj.get("id"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportFormatError(f"malformed checkpoint: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid in canonical JSON")


_PREV_KEY = ',"prev_hash":"'
_SEQ_KEY = '","seq":'


def _fast_event(line: str) -> HashedEvent | None:
    """(seq, prev_hash, hash, recomputed) of an event line exactly as ``event_line`` wrote
    it, without a JSON parser: the document's bytes are a slice of the line, and seq and
    prev_hash sit at fixed places at its end (the canonical key order puts them last).

    Nothing here trusts the layout: the slice is what gets hashed, and a slice that is not
    the document the server hashed cannot reproduce its hash (that would take a SHA-256
    preimage). None when the line is laid out otherwise (the JSON path handles it).
    """
    end = len(line) - 1 if line.endswith("\n") else len(line)
    cut = end - 75  # len(',"hash":"') + 64 + len('"}')
    if cut <= len(EVENT_PREFIX) or not line.startswith(HASH_INFIX, cut):
        return None
    if not line.endswith('"}', 0, end):
        return None
    preimage = line[len(EVENT_PREFIX) : cut]
    i = preimage.rfind(_PREV_KEY)
    if i < 0 or not preimage.startswith(_SEQ_KEY, i + 78) or not preimage.endswith("}"):
        return None
    seq_text = preimage[i + 86 : -1]
    if not seq_text.isdigit() or not seq_text.isascii():
        return None
    return (
        int(seq_text),
        preimage[i + 14 : i + 78],
        line[cut + 9 : end - 2],
        hashlib.sha256(preimage.encode("utf-8")).hexdigest(),
    )


def _event_from_json(obj: dict[str, Any]) -> HashedEvent:
    """The same from a parsed event object (e.g. a file re-indented by a JSON tool)."""
    event, h = obj["event"], obj["hash"]
    seq, prev = event["seq"], event["prev_hash"]
    if seq.__class__ is not int or prev.__class__ is not str or h.__class__ is not str:
        raise ExportFormatError("event seq, prev_hash and hash must be an int and strings")
    if "payload_raw" in event:
        payload = str(event["payload_raw"])
    else:
        value = event["payload"]
        if not isinstance(value, dict):
            raise ExportFormatError(f"event {seq}: payload is not an object")
        # Parsed without NaN/Infinity, so this is canonical_json's encoding.
        payload = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    fields = (str(event[k]) for k in ("at", "actor", "action", "entity_type", "entity_id"))
    at, actor, action, entity_type, entity_id = fields
    recomputed = event_hash(seq, at, actor, action, entity_type, entity_id, payload, prev)
    return seq, prev, h, recomputed


def verify_export(
    lines: Iterable[str | bytes],
    public_keys: Iterable[str | bytes | Ed25519PublicKey],
    *,
    trusted_checkpoints: Iterable[CheckpointRecord] = (),
) -> VerifyReport:
    """Verify an export (JSON lines) offline, trusting nothing but ``public_keys``.

    Every checkpoint in the export must be signed by one of the keys. A checkpoint the
    user kept from earlier (``trusted_checkpoints``, e.g. from a certificate) proves the
    export was not cut short or rewritten since: the log must reach its size and match
    its root there.
    """
    verifier = ChainVerifier(public_keys, require_trusted_key=True)
    header: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    line_no = 0
    n_checkpoints = 0

    def events() -> Iterator[HashedEvent]:
        nonlocal header, end, line_no, n_checkpoints
        loads = json.JSONDecoder(parse_constant=_refuse_constant).decode
        for raw in lines:
            line_no += 1
            line = raw.decode("utf-8") if raw.__class__ is bytes else raw
            if line.startswith(EVENT_PREFIX):  # type: ignore[union-attr]
                item = _fast_event(line)  # type: ignore[arg-type]
                if item is not None and end is None:
                    yield item
                    continue
            elif len(line) < 3 and not line.strip():  # type: ignore[union-attr]
                continue
            try:
                obj = loads(line)  # type: ignore[arg-type]
                if end is not None:
                    raise ExportFormatError("content after the end line")
                if "event" in obj:
                    yield _event_from_json(obj)
                elif "checkpoint" in obj:
                    # Checked as soon as the log reaches its size; one larger than the
                    # whole log (after a deletion) makes ``finish`` report the loss.
                    n_checkpoints += 1
                    verifier.add_checkpoint(checkpoint_from_json(obj["checkpoint"]))
                elif "header" in obj:
                    if header is not None or line_no != 1:
                        raise ExportFormatError("the header must be the first line, once")
                    if obj["header"].get("format") != EXPORT_FORMAT:
                        raise ExportFormatError(
                            f"unknown export format {obj['header'].get('format')!r}"
                        )
                    header = obj["header"]
                elif "end" in obj:
                    end = obj["end"]
                else:
                    raise ExportFormatError(f"unknown line {line[:60]!r}")
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise _Failed(None, f"line {line_no}: {exc}") from exc

    try:
        # A kept checkpoint is checked like the export's own when the log reaches its
        # size; if the log never does, ``finish`` reports the missing events.
        for cp in trusted_checkpoints:
            verifier.add_checkpoint(cp)
        verifier.feed(events())
        if header is None:
            raise _Failed(None, f"not an audit export: no {EXPORT_FORMAT} header line")
        if end is None:
            raise _Failed(
                verifier.size, f"the export is cut short after {verifier.size} events (no end line)"
            )
        if end.get("events") != verifier.size or end.get("checkpoints") != n_checkpoints:
            raise _Failed(
                None,
                f"the end line counts {end.get('events')} events and {end.get('checkpoints')} "
                f"checkpoints; the file holds {verifier.size} and {n_checkpoints}",
            )
        verifier.finish()
    except _Failed as failure:
        return verifier.report(failure)
    return verifier.report()


def export_event_hashes(lines: Iterable[str | bytes], seqs: Iterable[int]) -> dict[int, str]:
    """The hashes the export records for events ``seqs`` (run ``verify_export`` first:
    this only reads, it does not check)."""
    wanted = set(seqs)
    found: dict[int, str] = {}
    for raw in lines:
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not wanted or not line.startswith(EVENT_PREFIX):
            continue
        item = _fast_event(line)
        if item is None:
            try:
                obj = json.loads(line)
                item = (obj["event"]["seq"], "", obj["hash"], "")
            except (ValueError, KeyError, TypeError):
                continue
        if item[0] in wanted:
            found[item[0]] = item[2]
            wanted.discard(item[0])
    return found
