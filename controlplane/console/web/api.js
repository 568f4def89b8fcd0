// The console's JSON API (package console): every call is a POST with the
// session's CSRF token; the session cookie is HttpOnly and never read here.

let csrf = '';

export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || '';
    this.violations = body.violations || [];
  }
  // unavailable: the control plane does not implement the call (yet).
  get unavailable() { return this.status === 501 || this.code === 'Unimplemented'; }
}

async function answer(res) {
  let body = {};
  try { body = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

export async function session() {
  const s = await answer(await fetch('api/session', { credentials: 'same-origin' }));
  csrf = s.csrf;
  return s;
}

export async function login(token) {
  const s = await answer(await fetch('api/login', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ token }),
  }));
  csrf = s.csrf;
  return s;
}

export async function logout() {
  await answer(await fetch('api/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-CSRF-Token': csrf } }));
  csrf = '';
}

// rpc calls "Service/Method" with a request object (proto field names).
export async function rpc(method, req = {}) {
  return answer(await fetch('api/rpc/' + method, {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf },
    body: JSON.stringify(req),
  }));
}
