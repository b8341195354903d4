// Small DOM helpers: elements, tables, forms whose fields show the server's message next to
// the field it names, a status toast, downloads and a copy button. No framework.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) { el.replaceChildren(); append(el, children); return el; }

export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.textContent = ""; }, 6000);
}

export function badge(text, cls = "") { return h("span", { class: `badge ${cls}` }, text ?? "—"); }
export const code = (text) => h("code", {}, text ?? "—");
export const when = (iso) => iso ? h("time", { datetime: iso }, iso.replace("T", " ").replace(/\.\d+/, "")) : "—";

// columns: [{label, cell: row => node|string}]
export function table(caption, columns, rows, { empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "muted" }, empty);
  return h("table", {},
    h("caption", { class: "muted small" }, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => h("td", {}, c.cell(r)))))));
}

let fieldCounter = 0;

// A labelled field. spec: {name, label, type, hint, options, required, value, multiple, rows}
export function field(spec) {
  const id = `f${++fieldCounter}-${spec.name.replace(/[^a-z0-9_-]/gi, "-")}`;
  const errorId = `${id}-error`;
  const hintId = spec.hint ? `${id}-hint` : null;
  const described = [hintId, errorId].filter(Boolean).join(" ");
  let input;
  const common = { id, name: spec.name, "aria-describedby": described, required: spec.required };
  if (spec.options) {
    input = h("select", { ...common, multiple: spec.multiple, size: spec.multiple ? Math.min(6, spec.options.length) : null },
      spec.options.map((o) => {
        const [value, label] = Array.isArray(o) ? o : [o, o];
        const selected = Array.isArray(spec.value) ? spec.value.includes(value) : spec.value === value;
        return h("option", { value, selected }, label);
      }));
  } else if (spec.type === "textarea") {
    input = h("textarea", { ...common, rows: spec.rows || 8, spellcheck: "false" });
    input.value = spec.value || "";
  } else {
    input = h("input", { ...common, type: spec.type || "text", value: spec.value ?? null,
      placeholder: spec.placeholder, autocomplete: "off" });
  }
  return h("div", { class: "field", "data-field": spec.name },
    h("label", { for: id }, spec.label),
    hintId ? h("p", { class: "hint", id: hintId }, spec.hint) : null,
    input,
    h("p", { class: "error", id: errorId, "aria-live": "polite" }));
}

export function values(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name) continue;
    if (el.tagName === "SELECT" && el.multiple) out[el.name] = [...el.selectedOptions].map((o) => o.value);
    else out[el.name] = el.value.trim();
  }
  return out;
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of form.querySelectorAll(".error")) el.textContent = "";
}

// Show a server error next to the field its `param` names (or the form's own error line).
export function showError(form, error) {
  const param = (error.param || "").split(/[.[]/)[0];
  const box = param && form.querySelector(`[data-field="${CSS.escape(param)}"]`);
  if (box) {
    const input = box.querySelector("input, select, textarea");
    input.setAttribute("aria-invalid", "true");
    box.querySelector(".error").textContent = error.message;
    input.focus();
  } else {
    form.querySelector(".form-error").textContent = error.message;
  }
}

// A form that submits through `action(values)`; errors land next to their fields.
export function form(title, fields, submitLabel, action, { extra = [] } = {}) {
  const el = h("form", { class: "card", novalidate: true, "aria-label": title },
    h("h2", {}, title), fields.map(field), extra,
    h("p", { class: "error form-error", role: "alert" }),
    h("button", { type: "submit" }, submitLabel));
  el.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(el);
    const button = el.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      await action(values(el), el);
    } catch (error) {
      if (error.status === 401) return;
      showError(el, error);
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

export function download(name, text, type = "application/json") {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "secondary" }, label);
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      const range = document.createRange();
      range.selectNodeContents(button.previousElementSibling || button);
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
  });
  return button;
}

export function unavailable(what, error) {
  return h("div", { class: "unavailable", role: "note" },
    h("strong", {}, `${what}: not available in this deployment.`), " ",
    error && error.status === 404 ? "The server does not offer this endpoint (yet)." : (error ? error.message : ""));
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(([, v]) => v !== undefined).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}
