// The policy in force: packs and rules with their citations, directives in force, and
// "explain" for a context (the decision and every rule considered).

import { get, post } from "../api.js";
import { badge, clear, code, field, h, kv, showError, clearErrors, table, values } from "../ui.js";

const EXAMPLE = {
  application: { id: "acme-research", use_cases: ["research.b2b"], data_origin: "HK" },
  participant: { id: "acme", jurisdiction: "HK" },
  end_user: { verified: true, nationality: ["HK"] },
  model: { name: "fable-5", origin: "US", hosting: "US", export_tags: ["us-frontier"], class: "frontier-chat" },
  request: { time: new Date().toISOString().slice(0, 19) + "Z" },
};

export async function policy(view) {
  const p = await get("/admin/v1/policy");
  const bundle = p.bundle;
  view.append(h("h1", {}, "Policy in force"),
    kv([["Header", code(p.header)], ["Declared version", bundle.declared_version], ["Digest", code(bundle.digest)],
      ["Directives in force", p.directives.map((d) => d.id).join(", ") || "none"]]));
  view.append(h("h2", {}, "Packs and rules"));
  for (const file of bundle.files) {
    view.append(h("details", { class: "card" },
      h("summary", {}, h("strong", {}, file.bundle), ` ${file.version} — ${file.rules.length} rules`),
      h("p", { class: "muted" }, file.description || ""),
      table(`Rules of ${file.bundle}, in order`, [
        { label: "Rule", cell: (r) => code(r.id) },
        { label: "Gives", cell: (r) => r.tier ? badge(`tier ${r.tier}`, `tier-${r.tier}`) : badge(r.effect, `eff-${r.effect}`) },
        { label: "Code", cell: (r) => r.code || "—" },
        { label: "Citation", cell: (r) => r.citation },
        { label: "Meaning", cell: (r) => r.message },
      ], file.rules)));
  }
  const out = h("div", { "aria-live": "polite" });
  const explain = h("form", { class: "card", "aria-label": "Explain a decision", novalidate: true },
    h("h2", {}, "Explain a context"),
    field({ name: "context", label: "Context (JSON)", type: "textarea", rows: 12, value: JSON.stringify(EXAMPLE, null, 2),
      hint: "Who asks, for which model; the policy in force decides and shows every rule it considered" }),
    h("p", { class: "error form-error", role: "alert" }), h("button", { type: "submit" }, "Explain"));
  explain.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(explain);
    let context;
    try { context = JSON.parse(values(explain).context); } catch (e) {
      return showError(explain, { param: "context", message: `not valid JSON: ${e.message}` });
    }
    try {
      const r = await post("/admin/v1/policy/explain", context);
      const d = r.decision;
      clear(out, h("h2", {}, "Decision: ", badge(d.effect, `eff-${d.effect}`)),
        kv([["Tier", `${r.tier.tier} (${r.tier.reason}; ${r.tier.citation})`], ["Code", d.code], ["Message", d.message], ["Policy", code(r.policy)]]),
        h("h3", {}, "Reasons"), h("ol", {}, d.reasons.map((x) => h("li", {}, code(x.rule), `: ${x.message}`, h("br"), h("span", { class: "muted small" }, x.citation)))),
        h("h3", {}, "Every rule considered"), table("Rules considered", [
          { label: "Rule", cell: (x) => code(x.rule) }, { label: "Fired", cell: (x) => x.fired ? badge("fired", "ok") : "no" },
          { label: "Why", cell: (x) => x.why }, { label: "Citation", cell: (x) => x.citation },
        ], [...r.tier_rules, ...r.rules]));
    } catch (error) {
      if (error.status !== 401) showError(explain, { message: error.message, param: "context" });
    }
  });
  view.append(explain, out);
}
