// The admin JSON API, called with the console's session cookie. Every write carries the session's
// CSRF token (the server refuses a cookie write without it: 403 csrf_failed).

let csrf = '';
let lost = () => {};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCsrf(token) {
  csrf = token || '';
}

/** What to do when the session ends under the page (expired, logged out elsewhere, disabled). */
export function onSessionLost(handler) {
  lost = handler;
}

/** Calls the API; answers the parsed JSON (or null), or throws an ApiError with its message. */
export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const detail = data && data.error ? data.error : {};
    if (response.status === 401 && !path.startsWith('/console/')) lost();
    throw new ApiError(response.status, detail.code || 'http_' + response.status,
      detail.message || response.statusText || 'the request failed');
  }
  return data;
}

/** A query string from the non-empty values of `params`. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') q.set(k, v);
  }
  const s = q.toString();
  return s ? '?' + s : '';
}

/** A fresh idempotency key for one submitted form. */
export function freshKey(prefix) {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return prefix + '-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
