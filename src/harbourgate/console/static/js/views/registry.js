// Operator views: participants (admit, suspend, re-admit) and applications (register with
// the computed tier and why, approvals with conditions and expiry, keys shown once).

import { del, get, patch, post } from "../api.js";
import { badge, clear, code, copyButton, form, h, kv, table, toast, when } from "../ui.js";
import { list, vocab } from "./schema.js";

const tierBadge = (tier) => badge(tier || "unclassified", `tier-${tier}`);

export async function participants(view, ctx) {
  const [{ data }, words] = await Promise.all([get("/admin/v1/participants"), vocab()]);
  const refresh = () => participants(clear(view), ctx);
  view.append(h("h1", {}, "Participants"));
  if (ctx.canChange) {
    view.append(form("Admit a participant", [
      { name: "name", label: "Name", required: true },
      { name: "id", label: "Id (optional)", hint: "Letters, digits, '.', '_' or '-'; made from the name when empty" },
      { name: "jurisdiction", label: "Jurisdiction", hint: "ISO 3166-1 alpha-2 code of incorporation, e.g. HK", required: true },
      { name: "screening", label: "Restricted-party screening", options: words.screening, value: "clear" },
    ], "Admit", async (v) => {
      const body = { name: v.name, jurisdiction: v.jurisdiction, screening: v.screening };
      if (v.id) body.id = v.id;
      const made = await post("/admin/v1/participants", body);
      toast(`Admitted ${made.name} (${made.id}); audit entry ${made.audit_id}`);
      await refresh();
    }));
  }
  const setStatus = (p, status) => async () => {
    const changed = await patch(`/admin/v1/participants/${encodeURIComponent(p.id)}`, { status });
    toast(`${p.id} is now ${changed.status}; audit entry ${changed.audit_id}`);
    await refresh();
  };
  view.append(h("h2", {}, "Admitted participants"), table("Participants, oldest first", [
    { label: "Id", cell: (p) => code(p.id) },
    { label: "Name", cell: (p) => p.name },
    { label: "Jurisdiction", cell: (p) => p.jurisdiction },
    { label: "Status", cell: (p) => badge(p.status, p.status === "admitted" ? "ok" : "bad") },
    { label: "Screening", cell: (p) => p.screening },
    { label: "Admitted", cell: (p) => when(p.created_at) },
    { label: "Actions", cell: (p) => !ctx.canChange ? "" : p.status === "admitted"
      ? h("button", { type: "button", class: "danger", onclick: setStatus(p, "suspended"), "aria-label": `Suspend ${p.id}` }, "Suspend")
      : h("button", { type: "button", class: "secondary", onclick: setStatus(p, "admitted"), "aria-label": `Re-admit ${p.id}` }, "Re-admit") },
  ], data, { empty: "No participant admitted yet." }));
}

function classification(app) {
  const c = app.classification;
  if (!c) return h("p", { class: "muted" }, "No policy is loaded: no tier.");
  return h("div", { class: "card", "aria-label": "Tier and why" },
    h("h3", {}, "Tier: ", tierBadge(c.tier)),
    kv([["Why", c.reason], ["Rule", code(c.rule)], ["Citation", c.citation], ["Pack", c.pack || "—"],
      ["Tier rules matched", (c.matched || []).join(", ") || "—"]]));
}

export async function applications(view, ctx) {
  if (ctx.arg) return application(view, ctx, ctx.arg);
  const [apps, parts, words] = await Promise.all([get("/admin/v1/applications"), get("/admin/v1/participants"), vocab()]);
  view.append(h("h1", {}, "Applications & keys"));
  if (ctx.canChange) {
    const result = h("div", { "aria-live": "polite" });
    view.append(form("Register an application", [
      { name: "participant_id", label: "Participant", options: parts.data.map((p) => [p.id, `${p.name} (${p.id})`]), required: true },
      { name: "name", label: "Name", required: true },
      { name: "id", label: "Id (optional)" },
      { name: "use_cases", label: "Use cases", options: words.useCases, multiple: true, hint: "From the use-case taxonomy; the policy's tier rules read them" },
      { name: "data_categories", label: "Data categories", options: words.categories, multiple: true },
      { name: "data_origin", label: "Data origin (optional)", hint: "ISO 3166-1 alpha-2, e.g. HK" },
      { name: "model_preference", label: "Model preference", hint: "Model routes, most preferred first, separated by commas (e.g. fable-5, qwen-local)" },
      { name: "transfer_mechanisms", label: "Transfer mechanisms", options: words.mechanisms, multiple: true },
    ], "Register", async (v) => {
      const body = { participant_id: v.participant_id, name: v.name, use_cases: v.use_cases,
        data_categories: v.data_categories, model_preference: list(v.model_preference),
        transfer_mechanisms: v.transfer_mechanisms };
      if (v.id) body.id = v.id;
      if (v.data_origin) body.data_origin = v.data_origin;
      const made = await post("/admin/v1/applications", body);
      toast(`Registered ${made.id}: tier ${made.tier}`);
      clear(result, h("h2", {}, `Registered ${made.name} (`, code(made.id), ")"), classification(made),
        h("p", {}, h("a", { href: `#/applications/${encodeURIComponent(made.id)}` }, `Open ${made.id}: approvals and keys`)));
    }), result);
  }
  view.append(h("h2", {}, "Registered applications"), table("Applications, oldest first", [
    { label: "Id", cell: (a) => h("a", { href: `#/applications/${encodeURIComponent(a.id)}` }, a.id) },
    { label: "Name", cell: (a) => a.name },
    { label: "Participant", cell: (a) => a.participant_id },
    { label: "Tier", cell: (a) => tierBadge(a.tier) },
    { label: "Why", cell: (a) => a.classification ? h("span", {}, a.classification.reason, h("br"), h("span", { class: "muted small" }, a.classification.citation)) : "—" },
    { label: "Status", cell: (a) => a.status },
  ], apps.data, { empty: "No application registered yet." }));
}

async function application(view, ctx, id) {
  const path = `/admin/v1/applications/${encodeURIComponent(id)}`;
  const [app, approvals, keys] = await Promise.all([get(path), get(`${path}/approvals`), get(`${path}/keys`)]);
  const refresh = () => application(clear(view), ctx, id);
  view.append(h("p", {}, h("a", { href: "#/applications" }, "← All applications")),
    h("h1", {}, `Application ${app.name}`),
    kv([["Id", code(app.id)], ["Participant", app.participant_id], ["Status", app.status],
      ["Use cases", app.use_cases.join(", ")], ["Data categories", app.data_categories.join(", ") || "—"],
      ["Data origin", app.data_origin], ["Model preference", app.model_preference.join(" → ") || "—"]]),
    classification(app));
  if (ctx.canChange) {
    const next = app.status === "active" ? "suspended" : "active";
    view.append(h("button", { type: "button", class: next === "suspended" ? "danger" : "secondary", onclick: async () => {
      const changed = await patch(path, { status: next });
      toast(`${id} is now ${changed.status}`);
      await refresh();
    } }, next === "suspended" ? "Suspend this application" : "Re-activate this application"));
  }

  view.append(h("h2", {}, "Approvals"), table("Approvals of this application", [
    { label: "Approver", cell: (a) => a.approver },
    { label: "Conditions", cell: (a) => a.conditions || "—" },
    { label: "Expires", cell: (a) => when(a.expires_at) },
    { label: "In force", cell: (a) => badge(a.valid ? "valid" : a.revoked_at ? "withdrawn" : "expired", a.valid ? "ok" : "bad") },
    { label: "Actions", cell: (a) => ctx.canChange && a.valid ? h("button", { type: "button", class: "danger", "aria-label": `Withdraw approval ${a.id}`, onclick: async () => {
      await del(`/admin/v1/approvals/${encodeURIComponent(a.id)}`);
      toast("Approval withdrawn");
      await refresh();
    } }, "Withdraw") : "" },
  ], approvals.data, { empty: app.tier === "high" ? "Not approved: a high-risk application is refused until it is." : "No approval recorded." }));
  if (ctx.canChange) {
    const nextYear = new Date(Date.now() + 365 * 864e5).toISOString().slice(0, 10) + "T00:00:00Z";
    view.append(form("Approve this application", [
      { name: "approver", label: "Approver", hint: "Who approved: the committee and its officer", required: true },
      { name: "conditions", label: "Conditions", type: "textarea", rows: 3 },
      { name: "expires_at", label: "Expires at", hint: "ISO-8601 with a time zone, in the future", value: nextYear, required: true },
    ], "Record approval", async (v) => {
      const made = await post(`${path}/approvals`, v);
      toast(`Approval recorded; audit entry ${made.audit_id}`);
      await refresh();
    }));
  }

  view.append(h("h2", {}, "API keys"));
  const secret = h("div", { "aria-live": "polite" });
  if (ctx.canChange) {
    view.append(h("button", { type: "button", onclick: async () => {
      const issued = await post(`${path}/keys`);
      const shown = h("code", { id: "issued-key" }, issued.key);
      clear(secret, h("div", { class: "secret", role: "region", "aria-label": "New API key" },
        h("p", {}, h("strong", {}, "Copy this key now: it is shown once and stored nowhere.")),
        h("p", {}, shown, " ", copyButton(issued.key, "Copy key")),
        h("p", { class: "muted small" }, `Key ${issued.id}, prefix ${issued.prefix}; audit entry ${issued.audit_id}`)));
      const listing = await get(`${path}/keys`);
      clear(keyTable, keysTable(listing.data));
    } }, "Issue a key"), secret);
  }
  const keysTable = (rows) => table("Keys of this application (never the key itself)", [
    { label: "Id", cell: (k) => code(k.id) },
    { label: "Prefix", cell: (k) => code(k.prefix) },
    { label: "Issued", cell: (k) => when(k.created_at) },
    { label: "State", cell: (k) => k.revoked_at ? badge("revoked", "bad") : badge("active", "ok") },
    { label: "Actions", cell: (k) => ctx.canChange && !k.revoked_at ? h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.prefix}`, onclick: async () => {
      const done = await del(`/admin/v1/keys/${encodeURIComponent(k.id)}`);
      toast(`Key ${done.prefix} revoked; audit entry ${done.audit_id}`);
      const listing = await get(`${path}/keys`);
      clear(keyTable, keysTable(listing.data));
    } }, "Revoke") : "" },
  ], rows, { empty: "No key issued yet." });
  const keyTable = h("div", {}, keysTable(keys.data));
  view.append(keyTable);
}
