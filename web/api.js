// The backend's API as the page uses it: the session (kept in localStorage and refreshed a
// minute before it expires), JSON requests, and the chat stream (SSE over a POST).

const API = document.querySelector('meta[name="api-base"]')?.content ?? '';
const KEY = 'chat-session';

let session = JSON.parse(localStorage.getItem(KEY) ?? 'null');
let refreshTimer;
let onSignedOut = () => {};

export const signedIn = () => session !== null;
export const whenSignedOut = (callback) => { onSignedOut = callback; };

function keep(next) {
  session = next;
  clearTimeout(refreshTimer);
  if (!next) {
    localStorage.removeItem(KEY);
    return;
  }
  localStorage.setItem(KEY, JSON.stringify(next));
  const expiresAt = next.expires_at ?? Math.floor(Date.now() / 1000) + next.expires_in;
  const wait = Math.max(5, expiresAt - 60 - Date.now() / 1000) * 1000;
  refreshTimer = setTimeout(refresh, wait);
}

async function refresh() {
  let res;
  try {
    res = await fetch(`${API}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: session?.refresh_token }),
    });
  } catch {
    // Offline for now: the refresh token is still good, so try again soon.
    refreshTimer = setTimeout(refresh, 10_000);
    return;
  }
  if (res.ok) {
    keep((await res.json()).session);
  } else if (res.status === 401) {
    keep(null);
    onSignedOut('Your session ended; sign in again.');
  } else {
    refreshTimer = setTimeout(refresh, 10_000);
  }
}

/**
 * One request, its body JSON or a `FormData` (sent as `multipart/form-data`): `{status, body,
 * headers}`, the answer read as JSON; never throws for an HTTP error.
 */
export async function call(method, path, body) {
  const headers = {};
  if (session) headers.authorization = `Bearer ${session.access_token}`;
  const form = body instanceof FormData;
  if (body !== undefined && !form) headers['content-type'] = 'application/json';
  let res;
  try {
    res = await fetch(`${API}${path}`, {
      method, headers, body: body === undefined || form ? body : JSON.stringify(body),
    });
  } catch {
    return { status: 0, body: { error: { code: 'offline', message: 'the server cannot be reached' } } };
  }
  const text = await res.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (a proxy's or load balancer's error page): said in the API's own shape.
    parsed = { error: { code: 'bad_gateway', message: `the server answered ${res.status} without JSON` } };
  }
  if (res.status === 401 && session) {
    keep(null);
    onSignedOut('Your session ended; sign in again.');
  }
  return { status: res.status, body: parsed, headers: res.headers };
}

export async function signIn(path, fields) {
  const reply = await call('POST', path, fields);
  if (reply.body?.session) keep(reply.body.session);
  return reply;
}

export async function signOut() {
  await call('POST', '/api/v1/auth/logout');
  keep(null);
}

if (session) keep(session);

/**
 * Sends a chat message and calls `onEvent(name, data)` for each SSE event as it arrives.
 * Returns `{status, body}` for an answer that is not a stream (an error before the turn).
 */
export function chat(content, conversationId, onEvent, signal) {
  const body = JSON.stringify(conversationId ? { content, conversation_id: conversationId } : { content });
  return turn('/api/v1/chat/message', body, { 'content-type': 'application/json' }, onEvent, signal);
}

/** A recorded voice message: transcribed by the server, then the same stream (`transcript` first). */
export function voice(audio, conversationId, onEvent, signal) {
  const form = new FormData();
  form.append('audio', audio, 'voice');
  if (conversationId) form.append('conversation_id', conversationId);
  return turn('/api/v1/chat/voice', form, {}, onEvent, signal);
}

/** Uploads a document for the agent: `{status, body}` like `call`. */
export function upload(file) {
  const form = new FormData();
  form.append('file', file, file.name);
  return call('POST', '/api/v1/agent/files', form);
}

/** A turn's request; its SSE events go to `onEvent` as they arrive, or the JSON error returns. */
async function turn(path, body, headers, onEvent, signal) {
  const res = await fetch(`${API}${path}`, {
    method: 'POST',
    signal,
    headers: {
      ...headers,
      authorization: `Bearer ${session?.access_token}`,
      'idempotency-key': crypto.randomUUID(),
    },
    body,
  });
  if (!(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
    return { status: res.status, body: await res.json().catch(() => null), headers: res.headers };
  }
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = 'message';
      const data = [];
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) name = line.slice(6).trim();
        else if (line.startsWith('data:')) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join('\n')));
    }
  }
  return { status: res.status, body: null };
}
