"""The tamper-evident audit log: RFC 6962 Merkle tree, signed checkpoints, group commit.

Pure parts (`merkle`, `note`, `record`) know nothing of storage; `AuditLog` writes and
integrates entries and serves proofs; `verify` checks a whole stored log; `export` writes
an evidence bundle an auditor verifies with the standalone
`verify_evidence.py` the bundle carries (`harbourgate.audit.verify_evidence`).
"""

from harbourgate.audit.errors import (
    AuditError,
    AuditLogClosedError,
    AuditWriteError,
    DuplicateEntryError,
    EntryNotFoundError,
    EntryNotIntegratedError,
    InvalidProofRequestError,
)
from harbourgate.audit.log import AuditLog
from harbourgate.audit.model import ConsistencyProof, Entry, InclusionProof
from harbourgate.audit.note import Checkpoint, SignedCheckpoint, Signer, Verifier
from harbourgate.audit.record import RecordError, new_entry_id

__all__ = [
    "AuditError",
    "AuditLog",
    "AuditLogClosedError",
    "AuditWriteError",
    "Checkpoint",
    "ConsistencyProof",
    "DuplicateEntryError",
    "Entry",
    "EntryNotFoundError",
    "EntryNotIntegratedError",
    "InclusionProof",
    "InvalidProofRequestError",
    "RecordError",
    "SignedCheckpoint",
    "Signer",
    "Verifier",
    "new_entry_id",
]
