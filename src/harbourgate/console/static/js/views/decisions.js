// The decisions explorer: filters, cursor paging, each decision with its reasons,
// citations, obligations and data-profile counts (counts only: never personal data), and
// decisions over time by effect and by model.

import { get, query } from "../api.js";
import { EFFECT_COLOURS, PALETTE, columns } from "../chart.js";
import { badge, clear, code, download, field, h, kv, table, values, when } from "../ui.js";
import { evidenceFor } from "./audit.js";

const FILTERS = [
  { name: "since", label: "Since", hint: "Date or ISO-8601 instant" },
  { name: "until", label: "Until" },
  { name: "participant", label: "Participant" },
  { name: "application", label: "Application" },
  { name: "model", label: "Model" },
  { name: "decision", label: "Decision", options: [["", "any"], "allow", "reroute", "deny"] },
  { name: "rule", label: "Rule" },
];

export async function decisions(view, ctx) {
  const filters = h("form", { class: "card", "aria-label": "Filter decisions", novalidate: true },
    h("h2", {}, "Filter"), h("div", { class: "row" }, FILTERS.map(field)),
    h("p", { class: "error form-error", role: "alert" }),
    h("button", { type: "submit" }, "Apply filters"));
  const charts = h("section", { "aria-label": "Decisions over time" });
  const results = h("section", { "aria-label": "Decisions", id: "decision-results" });
  view.append(h("h1", {}, "Decisions"), filters, charts, results);
  let cursors = [];

  async function load(cursor) {
    const v = values(filters);
    const params = { ...v, limit: 50, cursor };
    for (const el of filters.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
    for (const el of filters.querySelectorAll(".error")) el.textContent = "";
    let page;
    try {
      page = await get(`/admin/v1/decisions${query(params)}`);
    } catch (error) {
      if (error.status === 401) return;
      const box = filters.querySelector(`[data-field="${error.param}"]`);
      if (box) {
        box.querySelector("select, input").setAttribute("aria-invalid", "true");
        box.querySelector(".error").textContent = error.message;
      } else filters.querySelector(".form-error").textContent = error.message;
      return;
    }
    renderPage(page);
    await drawCharts(v, page.data);
  }

  function renderPage(page) {
    const rows = page.data;
    const pager = h("div", { class: "pager" });
    if (cursors.length) pager.append(h("button", { type: "button", class: "secondary", onclick: () => { cursors.pop(); load(cursors[cursors.length - 1]); } }, "Previous page"));
    if (page.next_cursor) pager.append(h("button", { type: "button", class: "secondary", onclick: () => { cursors.push(page.next_cursor); load(page.next_cursor); } }, "Next page"));
    else if (page.has_more) pager.append(h("span", { class: "muted" }, "More decisions match: narrow the time window."));
    clear(results, h("h2", {}, `Recorded decisions (${rows.length} shown, newest first)`),
      table("Recorded request decisions", [
        { label: "When", cell: (d) => when(d.ts) },
        { label: "Participant", cell: (d) => d.participant },
        { label: "Application", cell: (d) => d.application },
        { label: "Model asked → served", cell: (d) => h("span", {}, code(d.model_requested), " → ", code(d.model_served)) },
        { label: "Decision", cell: (d) => badge(d.decision, `eff-${d.decision}`) },
        { label: "Rule", cell: (d) => h("span", {}, code(d.rule), h("br"), h("span", { class: "muted small" }, d.citation || "")) },
        { label: "Details", cell: details },
      ], rows, { empty: "No decision matches." }),
      pager,
      rows.length ? h("button", { type: "button", class: "secondary", onclick: async (e) => {
        e.target.disabled = true;
        e.target.textContent = "Collecting proofs…";
        const bundle = await evidenceFor(rows.map((d) => d.id));
        download(`harbourgate-evidence-${new Date().toISOString().slice(0, 19)}.json`, JSON.stringify(bundle, null, 2));
        e.target.disabled = false;
        e.target.textContent = "Export these decisions as evidence (with proofs)";
      } }, "Export these decisions as evidence (with proofs)") : null);
  }

  async function drawCharts(v, rows) {
    const params = { since: v.since, until: v.until, participant: v.participant,
      application: v.application, bucket: bucketFor(v.since, v.until) };
    clear(charts, h("h2", {}, "Decisions over time"));
    try {
      const [byDecision, byModel] = await Promise.all([
        get(`/admin/v1/decisions/stats${query({ ...params, by: "decision" })}`),
        get(`/admin/v1/decisions/stats${query({ ...params, by: "model" })}`),
      ]);
      charts.append(plot("By effect", byDecision, EFFECT_COLOURS), plot("By model", byModel));
    } catch (error) {
      if (error.status === 401) return;
      charts.append(h("p", { class: "note", role: "note" }, `Server-side statistics are not available in this deployment (${error.status === 404 ? "no /admin/v1/decisions/stats endpoint" : error.message}); the charts below count only the ${rows.length} decisions shown.`));
      charts.append(plot("By effect (decisions shown)", bucketed(rows, "decision"), EFFECT_COLOURS),
        plot("By model (decisions shown)", bucketed(rows, "model")));
    }
  }

  filters.addEventListener("submit", (e) => { e.preventDefault(); cursors = []; load(); });
  await load();
}

// Minutes for a window of up to two hours, hours up to a week, days beyond (default: a day).
function bucketFor(since, until) {
  const end = until ? Date.parse(until) : Date.now();
  const start = since ? Date.parse(since) : end - 864e5;
  const hours = (end - start) / 36e5;
  if (!(hours > 0)) return "hour";
  return hours <= 2 ? "minute" : hours <= 168 ? "hour" : "day";
}

// Counts of decisions per hour, from the rows at hand, in the stats endpoint's shape.
function bucketed(rows, by) {
  const buckets = new Map();
  for (const d of rows) {
    const t = (d.ts || "").slice(0, 13) + ":00:00Z";
    const key = by === "decision" ? d.decision : (d.model_served || d.model_requested || "none");
    const counts = buckets.get(t) || {};
    counts[key] = (counts[key] || 0) + 1;
    buckets.set(t, counts);
  }
  return { series: [...buckets.entries()].sort().map(([t, counts]) => ({ t, counts })) };
}

// GET /admin/v1/decisions/stats: {series: [{t, counts: {value: n}}]}.
function plot(title, stats, colours = {}) {
  const rows = stats.series || [];
  const times = [], series = new Map();
  rows.forEach((row) => {
    const t = row.t;
    if (!times.includes(t)) times.push(t);
    for (const [k, n] of Object.entries(row.counts || {})) {
      if (!series.has(k)) series.set(k, new Map());
      series.get(k).set(t, (series.get(k).get(t) || 0) + n);
    }
  });
  if (!times.length) return h("p", { class: "muted" }, `${title}: no decisions in the window.`);
  times.sort();
  const labels = times.map((t) => String(t).replace("T", " ").slice(5, 16));
  const list = [...series.entries()].map(([name, m], i) => ({ name, colour: colours[name] || PALETTE[i % PALETTE.length], values: times.map((t) => m.get(t) || 0) }));
  return columns(title, labels, list);
}

function details(d) {
  const reasons = d.reasons || [];
  const ob = d.obligations || {};
  return h("details", {}, h("summary", {}, "Why"),
    kv([["Audit entry", h("span", {}, code(d.id), " ", h("a", { href: `#/audit/${encodeURIComponent(d.id)}` }, "verify its inclusion"))],
      ["Tier", d.tier], ["Status", `${d.status}${d.code ? ` (${d.code})` : ""}`], ["Policy", code(d.policy)],
      ["Directives in force", (d.directives || []).join(", ") || "none"],
      ["Obligations", [ob.log ? `log: ${ob.log}` : null, ob.notice ? `notice: ${ob.notice}` : null,
        ob.human_review ? "human review" : null, (ob.pseudonymise || []).length ? `pseudonymise: ${ob.pseudonymise.join(", ")}` : null].filter(Boolean).join("; ") || "none"],
      ["Data profile (counts)", Object.entries(d.data_profile || {}).map(([k, n]) => `${k}: ${n}`).join(", ") || "no personal data found"],
      ["Pseudonymised (counts)", Object.entries(d.pseudonymised || {}).map(([k, n]) => `${k}: ${n}`).join(", ") || "none"],
      ["Failover", (d.failover || []).map((f) => `${f.route || f.model || ""} ${f.reason || f.error || ""}`.trim()).join("; ") || "none"]]),
    h("h4", {}, "Reasons"),
    h("ol", {}, reasons.map((r) => h("li", {}, code(r.rule), ` (${r.kind}${r.pack ? `, ${r.pack}` : ""}): ${r.message}`, h("br"), h("span", { class: "muted small" }, r.citation)))));
}
