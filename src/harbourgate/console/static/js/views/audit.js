// The audit log: the latest signed checkpoint, an entry's inclusion proof verified in this
// browser step by step, and evidence export (checkpoint, key, entries and their proofs).

import { api, get } from "../api.js";
import { verifyInclusion } from "../proof.js";
import { clear, code, download, field, h, kv, values } from "../ui.js";

const fetchers = {
  checkpoint: () => api("GET", "/admin/v1/audit/checkpoint", undefined, { text: true }),
  entry: (id) => get(`/admin/v1/audit/entries/${encodeURIComponent(id)}`),
  proof: (id, size) => get(`/admin/v1/audit/entries/${encodeURIComponent(id)}/proof?tree_size=${size}`),
};

// An evidence bundle: what an auditor needs to check these entries offline.
export async function evidenceFor(ids) {
  const [checkpoint, key] = await Promise.all([fetchers.checkpoint(), api("GET", "/admin/v1/audit/key", undefined, { text: true })]);
  const size = Number(checkpoint.split("\n")[1]);
  const entries = [];
  for (const id of ids) {
    try {
      const [entry, proof] = await Promise.all([fetchers.entry(id), fetchers.proof(id, size)]);
      entries.push({ ...entry, proof });
    } catch (error) {
      entries.push({ id, error: error.message });
    }
  }
  return { format: "harbourgate-evidence/1", exported_at: new Date().toISOString(),
    verifier_key: key.trim(), checkpoint, entries,
    how_to_verify: "leaf hash = SHA-256(0x00 || base64-decoded leaf); fold the proof's hashes per RFC 9162 §2.1.3.2 to the checkpoint's root; check the checkpoint's Ed25519 signature (C2SP signed note) with verifier_key, which you should obtain independently" };
}

export async function audit(view, ctx) {
  const [note, key] = await Promise.all([fetchers.checkpoint().catch((e) => e), api("GET", "/admin/v1/audit/key", undefined, { text: true })]);
  view.append(h("h1", {}, "Audit log"));
  if (typeof note === "string") {
    const [origin, size, root] = note.split("\n");
    view.append(h("h2", {}, "Latest signed checkpoint"),
      kv([["Origin", origin], ["Tree size", `${size} entries`], ["Root hash (base64)", code(root)]]),
      h("details", {}, h("summary", {}, "The checkpoint as signed (C2SP signed note)"), h("pre", {}, note)));
  } else {
    view.append(h("p", { class: "note" }, `No checkpoint yet: ${note.message}`));
  }

  const steps = h("div", { id: "proof-steps", "aria-live": "polite" });
  const verify = h("form", { class: "card", "aria-label": "Verify an entry's inclusion", novalidate: true },
    h("h2", {}, "Verify an entry in this browser"),
    h("p", { class: "muted small" }, "The browser recomputes the leaf hash and the path to the root with SHA-256, and checks the checkpoint's Ed25519 signature with WebCrypto against the verifier key below. Pin the key you obtained independently; the one prefilled is what this server says."),
    field({ name: "entry", label: "Audit entry id", value: ctx.arg || "", required: true, hint: "From a decision, or the audit_id of any change" }),
    field({ name: "vkey", label: "Verifier key to trust", value: key.trim(), required: true }),
    h("p", { class: "error form-error", role: "alert" }),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Fetch proof and verify"),
      h("button", { type: "button", class: "secondary", id: "export-entry", onclick: async () => {
        const id = values(verify).entry;
        if (!id) return;
        download(`harbourgate-evidence-${id}.json`, JSON.stringify(await evidenceFor([id]), null, 2));
      } }, "Export evidence for this entry")));
  verify.addEventListener("submit", async (event) => {
    event.preventDefault();
    const v = values(verify);
    verify.querySelector(".form-error").textContent = "";
    if (!v.entry) { verify.querySelector(".form-error").textContent = "entry: give an audit entry id"; return; }
    clear(steps, h("p", { class: "muted" }, "Verifying…"));
    const outcome = await verifyInclusion(v.entry, v.vkey, fetchers);
    const failed = outcome.steps.find((s) => !s.ok);
    clear(steps,
      h("p", { class: `verdict ${outcome.ok ? "ok" : "bad"}`, role: "status", id: "proof-verdict" }, outcome.ok
        ? `Verified: entry ${v.entry} is in the log signed by the checkpoint.`
        : `Not verified: the step "${failed.name}" failed — ${failed.detail}`),
      h("ol", { class: "steps" }, outcome.steps.map((s) => h("li", { class: s.ok ? "pass" : "fail" },
        h("span", { class: "mark", "aria-hidden": "true" }, s.ok ? "✓" : "✗"), h("strong", {}, s.name), `: ${s.ok ? "" : "FAILED — "}${s.detail}`))),
      outcome.entry ? h("details", {}, h("summary", {}, "The record as logged"), h("pre", {}, JSON.stringify(outcome.entry.record, null, 2))) : null);
  });
  view.append(verify, steps);
  if (ctx.arg) setTimeout(() => { if (verify.isConnected) verify.requestSubmit(); }, 0);
}
