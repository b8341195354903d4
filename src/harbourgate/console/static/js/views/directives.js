// Directives: draft (form or YAML), simulate against recorded traffic (who is affected,
// where they would be rerouted, who would be left without a model), then issue; revoke.

import { del, get, post } from "../api.js";
import { bars } from "../chart.js";
import { badge, clear, clearErrors, code, field, h, showError, table, toast, values, when } from "../ui.js";
import { list } from "./schema.js";

const TEMPLATE = `authority: US Department of Commerce
citation: "Order to Anthropic of 2026-06-12"
title: Frontier models for US nationals only
models: [fable-5, mythos-5]
permit_only: {nationality: [US]}
effective_from: 2026-06-12T00:00:00Z
effective_until: null
`;

let yamlModule = null;
async function parseYaml(text) {
  yamlModule = yamlModule || await import("../../vendor/js-yaml.mjs");
  try {
    return { value: yamlModule.load(text, { schema: yamlModule.CORE_SCHEMA }) };
  } catch (e) {
    const mark = e.mark || {};
    return { error: `YAML does not parse at line ${(mark.line ?? 0) + 1}, column ${(mark.column ?? 0) + 1}: ${e.reason || e.message}` };
  }
}

function fromForm(v) {
  const doc = { authority: v.authority, citation: v.citation, title: v.title,
    permit_only: { nationality: list(v.nationality) }, effective_from: v.effective_from || null,
    effective_until: v.effective_until || null };
  if (v.models) doc.models = list(v.models);
  if (v.export_tags) doc.export_tags = list(v.export_tags);
  if (v.id) doc.id = v.id;
  return doc;
}

export async function directives(view, ctx) {
  const { data } = await get("/admin/v1/directives");
  const refresh = () => directives(clear(view), ctx);
  view.append(h("h1", {}, "Directives"));
  view.append(h("h2", {}, "Issued"), table("Directives in the order they were issued", [
    { label: "Id", cell: (d) => code(d.id) },
    { label: "Title", cell: (d) => h("span", {}, d.title, h("br"), h("span", { class: "muted small" }, `${d.authority} — ${d.citation}`)) },
    { label: "Governs", cell: (d) => [...(d.models || []), ...(d.export_tags || []).map((t) => `tag:${t}`)].join(", ") },
    { label: "Permits only", cell: (d) => Object.entries(d.permit_only || {}).map(([k, v]) => `${k}: ${v.join(", ")}`).join("; ") },
    { label: "Effective", cell: (d) => h("span", {}, when(d.effective_from), " → ", d.effective_until ? when(d.effective_until) : "open") },
    { label: "State", cell: (d) => d.status === "revoked" ? badge("revoked", "bad") : badge(d.in_force ? "in force" : "issued, not in force", d.in_force ? "ok" : "") },
    { label: "Actions", cell: (d) => ctx.canChange && d.status !== "revoked" ? h("button", { type: "button", class: "danger", "aria-label": `Revoke directive ${d.id}`, onclick: async () => {
      const done = await del(`/admin/v1/directives/${encodeURIComponent(d.id)}`);
      toast(`Directive ${done.id} revoked; audit entry ${done.audit_id}`);
      await refresh();
    } }, "Revoke") : "" },
  ], data, { empty: "No directive issued." }));

  // The draft: one form, two ways to write the document.
  const mode = h("fieldset", { class: "field" }, h("legend", {}, "Write the directive as"),
    h("label", {}, h("input", { type: "radio", name: "mode", value: "form", checked: true }), " a form "),
    h("label", {}, h("input", { type: "radio", name: "mode", value: "yaml" }), " YAML"));
  const formFields = h("div", { "data-mode": "form" }, [
    { name: "authority", label: "Authority", value: "US Department of Commerce" },
    { name: "citation", label: "Citation", value: "Order to Anthropic of 2026-06-12" },
    { name: "title", label: "Title", value: "Frontier models for US nationals only" },
    { name: "models", label: "Models governed", hint: "Model routes, separated by commas", value: "fable-5, mythos-5" },
    { name: "export_tags", label: "Or export tags governed", hint: "Separated by commas" },
    { name: "nationality", label: "Permit only these nationalities", hint: "ISO codes, separated by commas; other end users are cut off", value: "US" },
    { name: "effective_from", label: "Effective from", hint: "ISO-8601 with a zone; empty: now", value: new Date().toISOString().slice(0, 19) + "Z" },
    { name: "effective_until", label: "Effective until (optional)" },
    { name: "id", label: "Id (optional)" },
  ].map(field));
  const yamlField = field({ name: "directive", label: "Directive (YAML or JSON)", type: "textarea", value: TEMPLATE, rows: 12 });
  const yamlBox = h("div", { "data-mode": "yaml", hidden: true }, yamlField);
  const weekAgo = new Date(Date.now() - 7 * 864e5).toISOString().slice(0, 10);
  const since = field({ name: "since", label: "Replay the traffic recorded since", hint: "A date or an ISO-8601 instant", value: weekAgo });
  const result = h("div", { "aria-live": "polite", id: "simulation" });
  const issueButton = h("button", { type: "button", disabled: true, id: "issue-directive" }, "Issue this directive");
  const draft = h("form", { class: "card", novalidate: true, "aria-label": "Draft a directive" },
    h("h2", {}, "Draft, simulate, issue"), mode, formFields, yamlBox, since,
    h("p", { class: "error form-error", role: "alert" }),
    h("div", { class: "row" }, h("button", { type: "submit" }, "Simulate against recorded traffic"), ctx.canChange ? issueButton : null));
  let simulated = null;

  for (const radio of mode.querySelectorAll("input")) {
    radio.addEventListener("change", () => {
      formFields.hidden = radio.value === "yaml";
      yamlBox.hidden = radio.value !== "yaml";
      simulated = null;
      issueButton.disabled = true;
    });
  }
  draft.addEventListener("input", () => { simulated = null; issueButton.disabled = true; });

  async function documentOf() {
    const v = values(draft);
    if (yamlBox.hidden) return fromForm(v);
    const parsed = await parseYaml(v.directive);
    if (parsed.error) throw { param: "directive", message: parsed.error };
    if (!parsed.value || typeof parsed.value !== "object" || Array.isArray(parsed.value)) {
      throw { param: "directive", message: "the directive must be a YAML mapping (key: value lines)" };
    }
    return parsed.value;
  }

  // The server names a directive's field as `directive.KEY` (simulate) or `KEY` (issue).
  function fail(error) {
    const key = (error.param || "").replace(/^directive\.?/, "");
    if (!yamlBox.hidden) return showError(draft, { message: error.message, param: "directive" });
    const known = { models: "models", export_tags: "export_tags", permit_only: "nationality" }[key] || key;
    return showError(draft, { message: error.message, param: known || "" });
  }

  draft.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(draft);
    try {
      const doc = await documentOf();
      const answer = await post("/admin/v1/directives/simulate", { directive: doc, since: values(draft).since });
      simulated = doc;
      issueButton.disabled = false;
      clear(result, impact(answer));
    } catch (error) {
      if (error.status === 401) return;
      if (error.param === "since") return showError(draft, error);
      fail(error);
    }
  });
  issueButton.addEventListener("click", async () => {
    clearErrors(draft);
    try {
      const made = await post("/admin/v1/directives", simulated);
      toast(`Directive ${made.id} issued; audit entry ${made.audit_id}`);
      await refresh();
    } catch (error) {
      if (error.status !== 401) fail(error);
    }
  });
  view.append(draft, result);
}

function impact(r) {
  const t = r.totals;
  const out = h("section", { "aria-label": "Simulated effect" }, h("h2", {}, "Simulated effect"),
    h("p", {}, `${t.replayed} recorded requests replayed since ${r.since}: `,
      h("strong", {}, `${t.affected} affected`), ` — ${t.rerouted} rerouted, `,
      h("strong", { class: t.no_permitted_model ? "bad" : "" }, `${t.no_permitted_model} left without a permitted model`),
      `; ${t.unaffected} unaffected, ${t.already_refused} already refused.`));
  const apps = r.applications.filter((a) => a.requests);
  if (apps.length) {
    out.append(bars("Requests per application under the directive", apps.map((a) => ({
      label: `${a.application} (${a.participant})`,
      parts: { unaffected: a.unaffected, rerouted: a.rerouted, "no permitted model": a.no_permitted_model },
    })), [{ name: "unaffected", colour: "#1a7f37" }, { name: "rerouted", colour: "#bc4c00" }, { name: "no permitted model", colour: "#cf222e" }]));
  }
  out.append(h("h3", {}, "Where they would be rerouted"), table("Reroutes", [
    { label: "Application", cell: (x) => x.application }, { label: "Participant", cell: (x) => x.participant },
    { label: "From", cell: (x) => code(x.from) }, { label: "To", cell: (x) => code(x.to) }, { label: "Requests", cell: (x) => x.requests },
  ], r.reroutes, { empty: "Nobody would be rerouted." }));
  out.append(h("h3", {}, "Who would be left without a model"), table("No permitted model", [
    { label: "Application", cell: (x) => x.application }, { label: "Participant", cell: (x) => x.participant },
    { label: "Model asked for", cell: (x) => code(x.model_requested) }, { label: "Refused by", cell: (x) => h("span", {}, code(x.rule), h("br"), h("span", { class: "muted small" }, x.citation)) },
    { label: "Requests", cell: (x) => x.requests },
  ], r.no_permitted_model, { empty: "Nobody would be left without a model." }));
  out.append(h("h3", {}, "Affected callers"), table("Affected end users (pseudonymous)", [
    { label: "Application", cell: (x) => x.application },
    { label: "End user", cell: (x) => x.end_user ? code(String(x.end_user).slice(0, 12)) : "anonymous" },
    { label: "Verified nationality", cell: (x) => x.verified ? (x.nationality || []).join(", ") : "unverified" },
    { label: "Asked for", cell: (x) => code(x.model_requested) },
    { label: "Outcome", cell: (x) => badge(x.outcome, x.outcome === "rerouted" ? "eff-reroute" : "eff-deny") },
    { label: "Served now → after", cell: (x) => `${x.served_now || "—"} → ${x.served_after || "none"}` },
    { label: "Requests", cell: (x) => x.requests },
  ], r.affected, { empty: "No caller affected." }));
  if (r.affected_omitted) out.append(h("p", { class: "muted" }, `${r.affected_omitted} more affected callers not listed.`));
  return out;
}
