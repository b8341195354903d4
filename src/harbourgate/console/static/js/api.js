// The admin API, as the console calls it: the session cookie goes by itself (same origin),
// every change carries the session's CSRF token, and every failure is an ApiError with the
// server's code, message and param (the field it is about).

let csrfToken = null;
const lostListeners = [];

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.param = error.param || null;
  }
}

export function setCsrf(token) { csrfToken = token; }
export function onSessionLost(listener) { lostListeners.push(listener); }

export async function api(method, path, body, { text = false } = {}) {
  const headers = { Accept: text ? "text/plain" : "application/json" };
  if (method !== "GET" && method !== "HEAD" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const init = { method, headers, credentials: "same-origin", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    let error = { message: `${response.status} ${response.statusText}` };
    try { error = (await response.json()).error || error; } catch { /* not JSON */ }
    const failure = new ApiError(response.status, error);
    if (response.status === 401 && path !== "/admin/v1/session") {
      for (const listener of lostListeners) listener(failure);
    }
    throw failure;
  }
  return text ? response.text() : response.json();
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body === undefined ? {} : body);
export const patch = (path, body) => api("PATCH", path, body);
export const del = (path) => api("DELETE", path);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}
