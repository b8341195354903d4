// Quotas and usage, and GPU pools: shown when the deployment's admin API offers them
// (each says plainly when it does not).

import { del, get, post, query } from "../api.js";
import { clear, form, h, table, toast, unavailable } from "../ui.js";

const show = (v) => v === null || v === undefined ? "—" : typeof v === "object" ? JSON.stringify(v) : String(v);

function generic(caption, rows) {
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return table(caption, keys.map((k) => ({ label: k, cell: (r) => show(r[k]) })), rows, { empty: "None." });
}

export async function quotas(view, ctx) {
  view.append(h("h1", {}, "Quotas & usage"));
  let listing;
  try { listing = await get("/admin/v1/quotas"); } catch (error) {
    if (error.status === 401) throw error;
    view.append(unavailable("Quotas", error));
  }
  if (listing) {
    const refresh = () => quotas(clear(view), ctx);
    const rows = listing.data || [];
    const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => k !== "id");
    view.append(h("h2", {}, "Quotas"), table("Quotas", [
      { label: "Id", cell: (q) => show(q.id) },
      ...keys.map((k) => ({ label: k, cell: (q) => show(q[k]) })),
      { label: "Actions", cell: (q) => ctx.canChange ? h("button", { type: "button", class: "danger", "aria-label": `Remove quota ${q.id}`, onclick: async () => {
        await del(`/admin/v1/quotas/${encodeURIComponent(q.id)}`);
        toast("Quota removed");
        await refresh();
      } }, "Remove") : "" },
    ], rows, { empty: "No quota set." }));
    if (ctx.canChange) {
      view.append(form("Set a quota", [
        { name: "participant", label: "Scope: participant" }, { name: "application", label: "Scope: application" },
        { name: "key", label: "Scope: key" }, { name: "route", label: "Scope: route" },
        { name: "requests_per_minute", label: "Requests per minute", type: "number" },
        { name: "tokens_per_minute", label: "Tokens per minute", type: "number" },
        { name: "budget_tokens", label: "Budget: tokens" }, { name: "budget_cost", label: "Budget: cost" },
        { name: "budget_period", label: "Budget period", options: ["day", "week", "month"], value: "month" },
        { name: "on_exhausted", label: "When exhausted", options: ["refuse", "reroute"], value: "refuse" },
      ], "Set quota", async (v) => {
        const scope = Object.fromEntries(["participant", "application", "key", "route"].filter((k) => v[k]).map((k) => [k, v[k]]));
        const body = { scope, on_exhausted: v.on_exhausted };
        if (v.requests_per_minute) body.requests_per_minute = Number(v.requests_per_minute);
        if (v.tokens_per_minute) body.tokens_per_minute = Number(v.tokens_per_minute);
        if (v.budget_tokens) body.budget = { tokens: Number(v.budget_tokens), period: v.budget_period };
        else if (v.budget_cost) body.budget = { cost: Number(v.budget_cost), period: v.budget_period };
        await post("/admin/v1/quotas", body);
        toast("Quota set");
        await refresh();
      }));
    }
  }
  const since = new Date(Date.now() - 864e5).toISOString().slice(0, 19) + "Z";
  try {
    const usage = await get(`/admin/v1/usage${query({ since, by: "participant", period: "day" })}`);
    view.append(h("h2", {}, "Usage in the last 24 hours, by participant and day"), generic("Usage", usage.data || []));
  } catch (error) {
    if (error.status === 401) throw error;
    view.append(unavailable("Usage", error));
  }
}

export async function pools(view) {
  view.append(h("h1", {}, "Pools"));
  let listing;
  try { listing = await get("/admin/v1/pools"); } catch (error) {
    if (error.status === 401) throw error;
    view.append(unavailable("Pools", error));
    return;
  }
  // {data: [{model, balance, health, healthy, servers: [{base_url, state, in_flight, ...}]}]}
  for (const pool of listing.data || []) {
    const { servers = [], ...rest } = pool;
    view.append(h("h2", {}, pool.model), generic(`Pool ${pool.model}`, [rest]),
      generic(`Servers of ${pool.model}`, servers));
  }
  if (!(listing.data || []).length) view.append(h("p", { class: "muted" }, "No pool configured."));
}
