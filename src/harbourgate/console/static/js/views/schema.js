// The admin API's own vocabularies (use cases, data categories, ...), read from its
// OpenAPI document so the console's choices never drift from what the server accepts.

import { get } from "../api.js";

let cached = null;

function enumOf(schema) {
  if (!schema) return [];
  if (schema.enum) return schema.enum;
  if (schema.items) return enumOf(schema.items);
  for (const k of ["anyOf", "allOf", "oneOf"]) {
    for (const s of schema[k] || []) { const e = enumOf(s); if (e.length) return e; }
  }
  return [];
}

export async function vocab() {
  if (!cached) {
    const doc = await get("/admin/v1/openapi.json");
    const schemas = doc.components.schemas;
    const prop = (model, name) => enumOf((schemas[model] || { properties: {} }).properties[name]);
    cached = {
      screening: prop("ParticipantIn", "screening"),
      useCases: prop("ApplicationIn", "use_cases"),
      categories: prop("ApplicationIn", "data_categories"),
      mechanisms: prop("ApplicationIn", "transfer_mechanisms"),
    };
  }
  return cached;
}

export const list = (text) => (text || "").split(",").map((s) => s.trim()).filter(Boolean);
