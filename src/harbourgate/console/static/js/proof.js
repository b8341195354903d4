// Check an audit entry's inclusion in the log, in this browser, against the signed
// checkpoint: the verifier key's id, the checkpoint's Ed25519 signature, the leaf hash
// SHA-256(0x00 ‖ leaf), every step of the RFC 9162 §2.1.3.2 inclusion path, and the root.
// Every step is reported; the first that fails stops the check and says why.
//
// The browser's WebCrypto does the hashing and the signature where it can. A page that is
// not a secure context (plain HTTP to a host other than localhost) has no WebCrypto, and an
// older browser may lack Ed25519 in it: then @noble/ed25519 and @noble/hashes, shipped with
// the console, do the same work.

const enc = new TextEncoder();

export function b64(text) {
  const bin = atob(text);
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
export const hex = (bytes) => [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
const concat = (...parts) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) { out.set(p, i); i += p.length; }
  return out;
};
const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

let noble = null;
async function nobleLibs() {
  if (!noble) {
    const [ed, sha2] = await Promise.all([import("../vendor/noble/ed25519.js"), import("../vendor/noble/hashes/sha2.js")]);
    ed.hashes.sha512 = sha2.sha512;
    noble = { ed, sha2 };
  }
  return noble;
}

const subtle = () => (globalThis.crypto && crypto.subtle) || null;

async function sha256(bytes) {
  if (subtle()) return new Uint8Array(await subtle().digest("SHA-256", bytes));
  return (await nobleLibs()).sha2.sha256(bytes);
}

// {ok, by}: whether the signature verifies, and which implementation said so.
async function ed25519Verify(publicKey, signature, message) {
  if (subtle()) {
    try {
      const key = await subtle().importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
      return { ok: await subtle().verify({ name: "Ed25519" }, key, signature, message), by: "WebCrypto" };
    } catch (e) {
      if (e.name !== "NotSupportedError") throw e;
    }
  }
  const { ed } = await nobleLibs();
  return { ok: ed.verify(signature, message, publicKey, { zip215: false }), by: "@noble/ed25519 (shipped with the console; this page has no Ed25519 in WebCrypto)" };
}

class StepFailed extends Error {}

export function parseVerifierKey(text) {
  const parts = text.trim().split("+");
  if (parts.length < 3) throw new StepFailed("a verifier key is name+keyid+key");
  const [name, keyId] = parts;
  const raw = b64(parts.slice(2).join("+"));
  if (raw.length !== 33 || raw[0] !== 1) throw new StepFailed("the key must be 0x01 (Ed25519) followed by 32 bytes");
  return { name, keyId, publicKey: raw.slice(1), raw };
}

export function parseCheckpoint(note) {
  const split = note.indexOf("\n\n");
  if (split < 0) throw new StepFailed("the checkpoint has no signature block (no blank line)");
  const body = note.slice(0, split + 1);
  const signatures = note.slice(split + 2).split("\n").filter(Boolean).map((line) => {
    const m = /^— (\S+) (\S+)$/.exec(line);
    if (!m) throw new StepFailed(`malformed signature line: ${line}`);
    return { name: m[1], blob: b64(m[2]) };
  });
  const [origin, size, root] = body.split("\n");
  if (!/^\d+$/.test(size || "")) throw new StepFailed("the checkpoint's second line must be the tree size");
  return { body, signatures, origin, size: Number(size), root: b64(root) };
}

// Returns {ok, steps:[{name, ok, detail}]}; `fetchers` gives the log's data, so the
// same code checks what the server sends and what a test hands it.
export async function verifyInclusion(entryId, pinnedKey, fetchers) {
  const steps = [];
  const step = (name, ok, detail) => { steps.push({ name, ok, detail }); if (!ok) throw new StepFailed(detail); };
  try {
    let key;
    try { key = parseVerifierKey(pinnedKey); } catch (e) { step("Verifier key", false, e.message); }
    const keyId = (await sha256(concat(enc.encode(key.name + "\n"), key.raw))).slice(0, 4);
    step("Verifier key", hex(keyId) === key.keyId,
      hex(keyId) === key.keyId ? `${key.name}, key id ${key.keyId} = SHA-256(name ‖ "\\n" ‖ 0x01 ‖ key)[:4]`
        : `the key id ${key.keyId} does not match the key (computed ${hex(keyId)})`);

    const note = await fetchers.checkpoint();
    let cp;
    try { cp = parseCheckpoint(note); } catch (e) { step("Checkpoint signature", false, e.message); }
    const sig = cp.signatures.find((s) => s.name === key.name && hex(s.blob.slice(0, 4)) === key.keyId);
    if (!sig) step("Checkpoint signature", false, `no signature by ${key.name}+${key.keyId} on the checkpoint`);
    let verified;
    try {
      verified = await ed25519Verify(key.publicKey, sig.blob.slice(4), enc.encode(cp.body));
    } catch (e) {
      step("Checkpoint signature", false, `the signature could not be checked: ${e.message}`);
    }
    step("Checkpoint signature", verified.ok, verified.ok
      ? `Ed25519 signature by ${key.name} verifies over the checkpoint (checked by ${verified.by}): ${cp.origin}, tree size ${cp.size}, root ${hex(cp.root)}`
      : "the Ed25519 signature does not verify over the checkpoint text: it was not signed by this key, or was altered");

    const entry = await fetchers.entry(entryId);
    const leaf = b64(entry.leaf);
    const leafHash = await sha256(concat(Uint8Array.of(0), leaf));
    step("Leaf hash", true, `SHA-256(0x00 ‖ ${leaf.length} leaf bytes) = ${hex(leafHash)}; entry ${entry.id} at index ${entry.index}`);

    const proof = await fetchers.proof(entryId, cp.size);
    step("Proof is for this checkpoint", proof.tree_size === cp.size && proof.index === entry.index,
      proof.tree_size === cp.size && proof.index === entry.index
        ? `index ${proof.index} in a tree of ${proof.tree_size}, ${proof.hashes.length} sibling hashes`
        : `the proof is for index ${proof.index} in a tree of ${proof.tree_size}, not index ${entry.index} in ${cp.size}`);
    if (proof.index >= proof.tree_size) step("Inclusion path", false, "the index is outside the tree");
    let fn = proof.index, sn = proof.tree_size - 1, r = leafHash;
    for (const [i, p64] of proof.hashes.entries()) {
      const p = b64(p64);
      if (sn === 0) step(`Path step ${i + 1}`, false, "the proof is longer than the tree is deep");
      let side;
      if (fn % 2 === 1 || fn === sn) {
        r = await sha256(concat(Uint8Array.of(1), p, r));
        side = "left";
        if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
      } else {
        r = await sha256(concat(Uint8Array.of(1), r, p));
        side = "right";
      }
      fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
      step(`Path step ${i + 1}`, true, `sibling ${hex(p).slice(0, 16)}… on the ${side}: SHA-256(0x01 ‖ …) = ${hex(r).slice(0, 16)}…`);
    }
    step("Path length", sn === 0, sn === 0 ? "the path reaches the root" : "the proof is shorter than the tree is deep");
    step("Root matches the signed checkpoint", equal(r, cp.root), equal(r, cp.root)
      ? `computed root ${hex(r)} = the checkpoint's root`
      : `computed root ${hex(r)} ≠ the checkpoint's root ${hex(cp.root)}`);
    return { ok: true, steps, entry, checkpoint: note, proof };
  } catch (e) {
    if (!(e instanceof StepFailed)) steps.push({ name: "Fetching the log's data", ok: false, detail: e.message });
    return { ok: false, steps };
  }
}
