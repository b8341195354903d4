"""`harbourgate audit verify | export | prove` on tampered databases, as users see it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from harbourgate import config
from harbourgate.audit import merkle, verify_evidence
from harbourgate.audit.log import AuditLog
from harbourgate.audit.note import Checkpoint, Signer
from harbourgate.cli.audit import audit

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "harbourgate.local/audit"


@dataclass
class Deployment:
    config: Path
    db: Path
    data_dir: Path
    ids: list[str]

    def run(self, *args: str) -> Result:
        return CliRunner().invoke(audit, [*args, "--config", str(self.config)])

    def sql(self, *statements: str) -> None:
        conn = sqlite3.connect(self.db)
        with conn:
            for statement in statements:
                conn.execute(statement)
        conn.close()

    def append(self, n: int) -> list[str]:
        settings = config.load(self.config)
        log = AuditLog.open(settings, checkpoint_interval=0)
        log.start()
        ids = [log.append_sync({"decision": "allow", "n": i}) for i in range(n)]
        log.close()
        log.engine.dispose()
        self.ids += ids
        return ids


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    """A deployment whose log holds 10 entries, each followed by a signed checkpoint."""
    data_dir = tmp_path / "data"
    cfg = tmp_path / "harbourgate.yaml"
    cfg.write_text(f"data_dir: {data_dir}\n")
    d = Deployment(cfg, data_dir / "harbourgate.db", data_dir, [])
    d.append(10)
    return d


def _idx(d: Deployment, i: int) -> str:
    return d.ids[i]


def test_an_intact_log_verifies(deployment: Deployment) -> None:
    result = deployment.run("verify")
    assert result.exit_code == 0, result.output
    assert "log harbourgate.local/audit: 10 entries" in result.output
    assert "checkpoints verified: 10 (latest size 10)" in result.output
    assert "OK: every entry and checkpoint verifies" in result.output


def test_verify_json_report(deployment: Deployment) -> None:
    result = deployment.run("verify", "--json")
    report = json.loads(result.output)
    assert result.exit_code == 0
    assert report["ok"] is True and report["entries"] == 10 and report["findings"] == []


def test_a_modified_entry_is_named(deployment: Deployment) -> None:
    deployment.sql("UPDATE audit_entries SET leaf = CAST(replace(leaf, 'allow', 'deny') AS BLOB)"
                   " WHERE idx = 4")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert ("FAIL root_mismatch: the log does not match the stored checkpoint of size 5: its "
            "first 5 entries hash to") in result.output
    assert (f"entry {_idx(deployment, 4)} (index 4) was modified, inserted or reordered (the "
            f"log matches every checkpoint up to size 4)") in result.output
    # and it says what to do about it
    advice = result.output[result.output.index("What to do"):]
    assert "503 audit_unavailable" in advice
    assert "Restore the database from the latest backup that holds at least the 10 entries " \
           "of checkpoint 10" in " ".join(advice.split())
    report = json.loads(deployment.run("verify", "--json").output)
    assert report["ok"] is False and report["what_to_do"][1].startswith("1. Stop every replica")


def test_a_hand_edited_leaf_is_named(deployment: Deployment) -> None:
    deployment.sql("UPDATE audit_entries SET leaf = CAST(replace(leaf, ',', ', ') AS BLOB) "
                   "WHERE idx = 2")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert (f"FAIL modified: entry {_idx(deployment, 2)} (index 2): the leaf is not in the "
            "canonical encoding the log writes: it was edited") in result.output


def test_a_deleted_entry_is_named(deployment: Deployment) -> None:
    deployment.sql("DELETE FROM audit_entries WHERE idx = 3")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert (f"FAIL deleted: indices 3..3 are missing: 1 entry deleted before entry "
            f"{_idx(deployment, 4)} (index 4); the tree cannot be recomputed past the gap"
            ) in result.output


def test_deleting_the_last_entries_is_caught_by_the_checkpoint(deployment: Deployment) -> None:
    deployment.sql("DELETE FROM audit_entries WHERE idx >= 8")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert ("FAIL deleted: the stored checkpoint of size 9 covers 9 entries but the log has 8: "
            "the last 1 entry was deleted") in result.output
    assert ("FAIL deleted: the stored checkpoint of size 10 covers 10 entries but the log has "
            "8: the last 2 entries were deleted") in result.output


def test_reordered_entries_are_named(deployment: Deployment) -> None:
    deployment.sql("UPDATE audit_entries SET idx = -1 WHERE idx = 2",
                   "UPDATE audit_entries SET idx = 2 WHERE idx = 6",
                   "UPDATE audit_entries SET idx = 6 WHERE idx = -1")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert (f"FAIL reordered: entry {_idx(deployment, 3)} (index 3) was written before the "
            "entry at index 2") in result.output
    assert ("FAIL root_mismatch: the log does not match the stored checkpoint of size 3"
            ) in result.output
    assert f"entry {_idx(deployment, 6)} (index 2) was modified, inserted or reordered" in (
        result.output)


def test_an_inserted_entry_is_named(deployment: Deployment) -> None:
    deployment.sql(
        "UPDATE audit_entries SET idx = idx + 100 WHERE idx >= 5",
        "UPDATE audit_entries SET idx = idx - 99 WHERE idx >= 105",
        "INSERT INTO audit_entries (id, idx, leaf, created_at) VALUES ('FORGED', 5, "
        "CAST('{\"decision\":\"allow\",\"id\":\"FORGED\",\"ts\":\"x\"}' AS BLOB), 'x')")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert (f"FAIL reordered: entry {_idx(deployment, 5)} (index 6) was written before the "
            "entry at index 5") in result.output
    assert ("entry FORGED (index 5) was modified, inserted or reordered (the log matches every "
            "checkpoint up to size 5)") in result.output


def test_an_entry_slipped_in_without_an_index_is_named(deployment: Deployment) -> None:
    deployment.sql("INSERT INTO audit_entries (id, leaf, created_at) VALUES ('SLIPPED', "
                   "CAST('{\"id\":\"SLIPPED\"}' AS BLOB), 'x')")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert ("FAIL inserted: entry SLIPPED has no leaf index: it was inserted outside the log "
            "writer") in result.output


def test_a_leaf_moved_to_another_row_is_named(deployment: Deployment) -> None:
    deployment.sql("UPDATE audit_entries SET leaf = (SELECT leaf FROM audit_entries WHERE idx = 1)"
                   " WHERE idx = 7")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert (f"FAIL reordered: entry {_idx(deployment, 7)} (index 7): the leaf holds the record "
            f"of entry '{_idx(deployment, 1)}': leaves were moved between rows or replaced"
            ) in result.output


def test_a_truncated_database_file(deployment: Deployment) -> None:
    size = deployment.db.stat().st_size
    with deployment.db.open("r+b") as f:
        f.truncate(size // 2)
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert "FAIL corrupt: the SQLite file is" in result.output
    assert "restore it from a backup" in result.output


def test_a_corrupt_database_file(deployment: Deployment) -> None:
    deployment.db.write_bytes(b"this is not a database at all" * 200)
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert ("FAIL corrupt: the SQLite file is corrupt or truncated (file is not a database): "
            "restore it from a backup") in result.output


def test_a_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {tmp_path / 'nowhere'}\n")
    result = CliRunner().invoke(audit, ["verify", "--config", str(cfg)])
    assert result.exit_code == 2
    assert "no audit signing key there" in result.output or "no database at" in result.output


def test_a_stored_checkpoint_signed_by_another_key(deployment: Deployment) -> None:
    other = Signer(ORIGIN, Ed25519PrivateKey.generate())
    forged = other.sign(Checkpoint(ORIGIN, 10, b"\x00" * 32).body())
    deployment.sql(f"UPDATE audit_checkpoints SET note = '{forged}' WHERE tree_size = 10")
    result = deployment.run("verify")
    assert result.exit_code == 1
    assert ("FAIL signature: the stored checkpoint of size 10 does not verify: not signed by "
            f"{ORIGIN}+") in result.output
    assert f"it is signed by {ORIGIN}+{other.verifier.key_id.hex()}" in result.output


def test_a_saved_checkpoint_checks_consistency(deployment: Deployment, tmp_path: Path) -> None:
    conn = sqlite3.connect(deployment.db)
    note = conn.execute("SELECT note FROM audit_checkpoints WHERE tree_size = 10").fetchone()[0]
    conn.close()
    saved = tmp_path / "cp-10.txt"
    saved.write_text(note)
    deployment.append(5)
    ok = deployment.run("verify", "--checkpoint", str(saved))
    assert ok.exit_code == 0, ok.output
    assert "saved checkpoint: size 10" in ok.output
    # rewrite history *and* re-sign nothing: the saved checkpoint still catches it
    deployment.sql("UPDATE audit_entries SET leaf = CAST(replace(leaf, 'allow', 'deny') AS BLOB)"
                   " WHERE idx = 0", "DELETE FROM audit_checkpoints")
    bad = deployment.run("verify", "--checkpoint", str(saved))
    assert bad.exit_code == 1
    assert ("FAIL root_mismatch: the log does not match your saved checkpoint (size 10)"
            ) in bad.output


def test_a_saved_checkpoint_from_another_key(deployment: Deployment, tmp_path: Path) -> None:
    other = Signer(ORIGIN, Ed25519PrivateKey.generate())
    saved = tmp_path / "cp.txt"
    saved.write_text(other.sign(Checkpoint(ORIGIN, 10, b"\x00" * 32).body()))
    result = deployment.run("verify", "--checkpoint", str(saved))
    assert result.exit_code == 1
    assert (f"FAIL signature: the saved checkpoint does not verify: not signed by {ORIGIN}+"
            ) in result.output


def test_a_malformed_saved_checkpoint_is_a_usage_error(deployment: Deployment,
                                                       tmp_path: Path) -> None:
    saved = tmp_path / "cp.txt"
    saved.write_text("hello\n")
    result = deployment.run("verify", "--checkpoint", str(saved))
    assert result.exit_code == 2
    assert (f"Error: --checkpoint {saved}: the saved checkpoint is not a signed checkpoint note "
            "(no signature block") in result.output


def test_prove_prints_a_proof_that_verifies(deployment: Deployment) -> None:
    result = deployment.run("prove", _idx(deployment, 3))
    assert result.exit_code == 0, result.output
    proof = json.loads(result.output)
    assert proof["index"] == 3 and proof["tree_size"] == 10 and proof["checkpoint"]
    import base64

    root = base64.b64decode(proof["checkpoint"].split("\n")[2])
    merkle.verify_inclusion(3, 10, base64.b64decode(proof["leaf_hash"]),
                            [base64.b64decode(h) for h in proof["hashes"]], root)


@pytest.mark.parametrize(("args", "message"), [
    (["prove", "NOPE"], "Error: no audit entry with id 'NOPE'"),
    (["prove", "ID", "--tree-size", "11"], "--tree-size 11 is outside the tree, which has 10"),
    (["prove", "ID", "--tree-size", "2"], "has index 5, so a tree of size 2 does not contain it"),
])
def test_prove_errors(deployment: Deployment, args: list[str], message: str) -> None:
    args = [a if a != "ID" else _idx(deployment, 5) for a in args]
    result = deployment.run(*args)
    assert result.exit_code == 2
    assert message in result.output


def test_export_bundle_verifies_with_the_standalone_script(deployment: Deployment,
                                                           tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = deployment.run("export", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"exported 10 entries and the checkpoint of size 10 to {out}" in result.output
    vkey = (out / "key.vkey").read_text().strip()
    # the bundle carries the verifier installed with the package; run it from a directory
    # with no Harbourgate in sight, by a bare interpreter that imports nothing from here
    bundled = out / "verify_evidence.py"
    assert bundled.read_bytes() == Path(verify_evidence.__file__).read_bytes()
    ok = subprocess.run([sys.executable, "-I", str(bundled), ".", "--key", vkey],
                        capture_output=True, text=True, cwd=out)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == (f"OK: 10 entries of log {ORIGIN} match the checkpoint signed "
                                 f"by {ORIGIN}")
    again = deployment.run("export", "--out", str(out))
    assert again.exit_code == 2 and "already exists; choose an empty --out directory" in (
        again.output)


def test_the_standalone_script_rejects_a_tampered_bundle(deployment: Deployment,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    assert deployment.run("export", "--out", str(out)).exit_code == 0
    lines = (out / "entries.jsonl").read_text().splitlines()
    import base64

    entry = json.loads(lines[4])
    leaf = base64.b64decode(entry["leaf"]).replace(b"allow", b"deny!")
    entry["leaf"] = base64.b64encode(leaf).decode()
    lines[4] = json.dumps(entry)
    (out / "entries.jsonl").write_text("\n".join(lines) + "\n")
    bad = subprocess.run([sys.executable, str(out / "verify_evidence.py"), str(out)],
                         capture_output=True, text=True)
    assert bad.returncode == 1
    assert "an entry was modified" in bad.stderr
    other = Signer(ORIGIN, Ed25519PrivateKey.generate()).verifier.vkey
    wrong_key = subprocess.run([sys.executable, str(out / "verify_evidence.py"), str(out),
                                "--key", other],
                               capture_output=True, text=True)
    assert wrong_key.returncode == 1
    assert "FAILED: the checkpoint is not signed by " + "+".join(other.split("+", 2)[:2]) in (
        wrong_key.stderr)
