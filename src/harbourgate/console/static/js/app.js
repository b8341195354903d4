// The console shell: sign-in, the session, the sections a role may see, and routing
// (#/section/argument). The server enforces every role check; hiding is for clarity only.

import { ApiError, api, onSessionLost, setCsrf } from "./api.js";
import { clear, h, showError, clearErrors } from "./ui.js";

const VIEWS = {
  participants: { roles: ["operator"], load: () => import("./views/registry.js").then((m) => m.participants) },
  applications: { roles: ["operator"], load: () => import("./views/registry.js").then((m) => m.applications) },
  directives: { roles: ["operator", "auditor"], load: () => import("./views/directives.js").then((m) => m.directives) },
  quotas: { roles: ["operator", "auditor"], load: () => import("./views/capacity.js").then((m) => m.quotas) },
  pools: { roles: ["operator", "auditor"], load: () => import("./views/capacity.js").then((m) => m.pools) },
  decisions: { roles: ["operator", "auditor"], load: () => import("./views/decisions.js").then((m) => m.decisions) },
  audit: { roles: ["operator", "auditor"], load: () => import("./views/audit.js").then((m) => m.audit) },
  policy: { roles: ["operator", "auditor"], load: () => import("./views/policy.js").then((m) => m.policy) },
};

const $ = (id) => document.getElementById(id);
let session = null;
let renderCount = 0;

function showSignIn(note = "") {
  session = null;
  setCsrf(null);
  $("nav").hidden = true;
  $("who").hidden = true;
  clear($("view"));
  $("sign-in").hidden = false;
  $("sign-in-note").textContent = note;
  document.title = "Sign in · Harbourgate console";
  $("token").focus();
}

function signedIn(found) {
  session = found;
  setCsrf(found.csrf_token);
  $("sign-in").hidden = true;
  $("who").hidden = false;
  $("who-name").textContent = found.name || `token ${found.token_id}`;
  $("who-role").textContent = found.role;
  for (const li of $("nav").querySelectorAll("li[data-role]")) {
    li.hidden = !li.dataset.role.split(" ").includes(found.role);
  }
  $("nav").hidden = false;
  route();
}

async function route() {
  if (!session) return;
  const [name = "", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const fallback = session.role === "operator" ? "participants" : "decisions";
  if (!VIEWS[name]) { location.hash = `#/${fallback}`; return; }
  for (const a of $("nav").querySelectorAll("a")) {
    if (a.getAttribute("href") === `#/${name}`) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const view = $("view");
  const ticket = ++renderCount;
  if (!VIEWS[name].roles.includes(session.role)) {
    clear(view, h("h1", {}, "Not available"), h("p", {}, `The ${session.role} role may not use this section.`));
    return;
  }
  clear(view, h("p", { class: "muted", role: "status" }, "Loading…"));
  const render = await VIEWS[name].load();
  if (ticket !== renderCount) return;
  const container = h("div", {});
  const ctx = { role: session.role, canChange: session.role === "operator", arg: rest.map(decodeURIComponent).join("/"),
    stale: () => ticket !== renderCount };
  try {
    await render(container, ctx);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return;
    container.append(h("p", { class: "error", role: "alert" }, error.message));
  }
  if (ticket !== renderCount) return;
  clear(view, container);
  const heading = container.querySelector("h1");
  document.title = `${heading ? heading.textContent : name} · Harbourgate console`;
  // Move focus to the new content when it was lost (sign-in) or was on the link that asked for
  // this view; never away from where the user has since tabbed to.
  const active = document.activeElement;
  if (active === document.body || active === null || active.getAttribute("aria-current") === "page") $("main").focus();
}

$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = event.target;
  clearErrors(form);
  try {
    const found = await api("POST", "/admin/v1/session", { token: $("token").value });
    $("token").value = "";
    signedIn(found);
  } catch (error) {
    showError(form, { param: "token", message: error.message });
  }
});

$("sign-out").addEventListener("click", async () => {
  try { await api("DELETE", "/admin/v1/session"); } catch { /* the cookie is cleared either way */ }
  showSignIn("You have signed out.");
});

onSessionLost((error) => showSignIn(error.message));
window.addEventListener("hashchange", route);

(async () => {
  try {
    signedIn(await api("GET", "/admin/v1/session"));
  } catch (error) {
    showSignIn(error.code === "session_expired" || error.code === "invalid_session" ? error.message : "");
  }
})();

// A button's failed change is said, not swallowed (a lost session already shows sign-in).
window.addEventListener("unhandledrejection", (event) => {
  const error = event.reason;
  if (error instanceof ApiError && error.status === 401) return;
  import("./ui.js").then((ui) => ui.toast(`Failed: ${error && error.message ? error.message : error}`));
});
