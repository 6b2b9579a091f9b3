// The page: sign-in, chat with token-by-token replies, conversations, memory and usage.
import * as api from './api.js';
import { liveMarkdown, renderMarkdown } from './markdown.js';

const $ = (id) => document.getElementById(id);
const state = { conversation: null, cursor: null, busy: null, again: null, recorder: null };

/** A sentence for an error answer or an SSE `error` event. */
function explain(status, error = {}) {
  const wait = error.retry_after ? ` Try again in ${error.retry_after} s.` : '';
  switch (error.code) {
    case 'budget_exceeded':
      return `Your budget is used up (spent $${(error.spend ?? 0).toFixed(2)} of $${(error.limit ?? 0).toFixed(2)}). Raise it under Usage.`;
    case 'turn_in_progress': return 'The assistant is still answering your previous message.';
    case 'rate_limited': return `You are sending messages too fast.${wait}`;
    case 'dependency_unavailable': return `The assistant is unavailable right now.${wait || ' Try again shortly.'}`;
    case 'billing_key_revoked': return 'Billing for your account is switched off; contact support.';
    case 'agent_interrupted': return 'The reply was cut off. Retry to ask again.';
    case 'llm_error': return 'The model failed to answer. Retry in a moment.';
    case 'invalid_credentials': return 'Wrong email or password.';
    case 'email_taken': return 'An account with this email already exists; log in instead.';
    case 'offline': return 'The server cannot be reached. Check your connection.';
    case 'no_speech': return 'Nothing was heard in the recording.';
    default: return error.message ?? `Something went wrong (HTTP ${status}).`;
  }
}

function element(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function collapsed(summary, text) {
  return element('details', {}, element('summary', { textContent: summary }), element('pre', { textContent: text }));
}

/** Collapsed reasoning, rendered as Markdown. */
function reasoningBlock(text) {
  const body = element('div', { className: 'markdown' });
  renderMarkdown(body, text);
  return element('details', { className: 'reasoning' }, element('summary', { textContent: 'Reasoning' }), body);
}

/** A message's text: the user's as typed, a reply as Markdown. */
function messageText(role, content) {
  if (role !== 'assistant') return element('p', { className: 'text', textContent: content });
  const text = element('div', { className: 'text markdown' });
  renderMarkdown(text, content);
  return text;
}

/** A message in the list; replies get their reasoning and tool calls collapsed. */
function messageItem(m) {
  const item = element('article', { className: `message ${m.role}` });
  item.setAttribute('aria-label', m.role === 'user' ? 'You' : 'Assistant');
  item.dataset.status = m.status ?? 'complete';
  if (m.reasoning) item.append(reasoningBlock(m.reasoning));
  for (const t of m.tool_calls ?? []) item.append(collapsed(`Tool: ${t.name}`, `${t.arguments}\n→ ${t.result ?? ''}`));
  item.append(messageText(m.role, m.content));
  const said = { interrupted: 'cut off', failed: 'not answered', cancelled: 'stopped' }[m.status];
  if (said) item.append(element('p', { className: 'status', textContent: said }));
  return item;
}

async function loadHistory(older = false) {
  const params = new URLSearchParams({ limit: '20' });
  if (state.conversation) params.set('conversation_id', state.conversation);
  if (older && state.cursor) params.set('before', state.cursor);
  const reply = await api.call('GET', `/api/v1/chat/history?${params}`);
  if (reply.status !== 200) return notice('chat-notice', explain(reply.status, reply.body?.error));
  const list = $('messages');
  if (!older) list.replaceChildren();
  const items = reply.body.messages.map(messageItem).reverse();
  if (older) list.prepend(...items); else list.append(...items);
  state.cursor = reply.body.next_cursor;
  $('older').hidden = !state.cursor;
  if (!older) list.lastElementChild?.scrollIntoView({ block: 'end' });
}

async function loadConversations() {
  const reply = await api.call('GET', '/api/v1/conversations?limit=20');
  if (reply.status !== 200) return;
  const list = $('conversations');
  list.replaceChildren(...reply.body.conversations.map((c) => {
    const button = element('button', { type: 'button', textContent: c.title ?? (c.id === 'default' ? 'Default' : 'Untitled') });
    button.setAttribute('aria-current', String((state.conversation ?? 'default') === c.id));
    button.addEventListener('click', () => {
      state.conversation = c.id === 'default' ? null : c.id;
      loadConversations();
      loadHistory();
    });
    return element('li', {}, button);
  }));
}

function notice(id, text) {
  $(id).textContent = text ?? '';
}

function send(text) {
  return runTurn(text, (onEvent, signal) => api.chat(text, state.conversation, onEvent, signal));
}

function sendVoice(audio) {
  return runTurn('Voice message…', (onEvent, signal) => api.voice(audio, state.conversation, onEvent, signal));
}

/** One turn: the user's message shown, then the reply as it streams. `call` sends the request. */
async function runTurn(shown, call) {
  notice('chat-notice', '');
  state.again = () => runTurn(shown, call);
  $('retry').hidden = true;
  const list = $('messages');
  const asked = messageItem({ role: 'user', content: shown });
  list.append(asked);
  const reply = messageItem({ role: 'assistant', content: '' });
  reply.dataset.status = 'streaming';
  const textNode = reply.querySelector('.text');
  const replyText = liveMarkdown(textNode);
  let reasoning = null;
  const controller = new AbortController();
  state.busy = controller;
  $('send').disabled = true;
  $('stop').hidden = false;
  const onEvent = (name, data) => {
    if (name === 'transcript') asked.querySelector('.text').textContent = data.text;
    if (name === 'start') list.append(reply);
    if (name === 'reasoning') {
      reasoning ??= liveMarkdown(reply.insertBefore(reasoningBlock(''), textNode).querySelector('.markdown'));
      reasoning.append(data.delta);
    }
    if (name === 'tool_call') reply.insertBefore(collapsed(`Tool: ${data.name}`, data.arguments), textNode);
    if (name === 'delta') replyText.append(data.text);
    if (name === 'done') {
      replyText.finish(data.text_corrected ? data.text : undefined);
      reasoning?.finish();
      const cancelled = data.stop_reason === 'cancelled';
      reply.dataset.status = cancelled ? 'cancelled' : 'complete';
      if (cancelled) notice('chat-notice', 'Stopped. What arrived is kept.');
    }
    if (name === 'title') loadConversations();
    if (name === 'error') {
      reply.dataset.status = 'interrupted';
      notice('chat-notice', explain(200, data));
      $('retry').hidden = !data.retryable;
    }
    reply.scrollIntoView({ block: 'end' });
  };
  try {
    const answer = await call(onEvent, controller.signal);
    if (answer.body?.error) {
      list.lastElementChild.dataset.status = 'failed';
      notice('chat-notice', explain(answer.status, answer.body.error));
      $('retry').hidden = ![429, 503, 409].includes(answer.status);
    }
  } catch (e) {
    if (e.name === 'AbortError') {
      reply.dataset.status = 'stopped';
      notice('chat-notice', 'Stopped. The agent may still finish; the reply appears in history.');
    } else {
      notice('chat-notice', explain(0, { code: 'offline' }));
    }
    $('retry').hidden = false;
  } finally {
    state.busy = null;
    $('send').disabled = false;
    $('stop').hidden = true;
  }
}

async function loadMemory() {
  const reply = await api.call('GET', '/api/v1/agent/memory');
  if (reply.status !== 200) return notice('chat-notice', explain(reply.status, reply.body?.error));
  $('blocks').replaceChildren(...reply.body.blocks.map((b) => {
    const id = `block-${b.label}`;
    const area = element('textarea', { id, value: b.value, maxLength: b.limit ?? 5000, rows: 4 });
    const save = element('button', { type: 'submit', textContent: `Save ${b.label}` });
    const form = element('form', { className: 'block' }, element('label', { htmlFor: id, textContent: b.label }), area, save);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const saved = await api.call('POST', '/api/v1/agent/memory', { label: b.label, value: area.value });
      notice('chat-notice', saved.status === 200 ? `${b.label} saved.` : explain(saved.status, saved.body?.error));
    });
    return form;
  }));
}

async function searchArchival(query) {
  const params = new URLSearchParams({ limit: '20' });
  if (query) params.set('query', query);
  const reply = await api.call('GET', `/api/v1/agent/memory/archival?${params}`);
  if (reply.status !== 200) return;
  $('archival').replaceChildren(...reply.body.memories.map((m) => {
    const remove = element('button', { type: 'button', textContent: 'Delete' });
    remove.setAttribute('aria-label', `Delete memory: ${m.text.slice(0, 40)}`);
    remove.addEventListener('click', async () => {
      const deleted = await api.call('DELETE', `/api/v1/agent/memory/archival/${encodeURIComponent(m.id)}`);
      if (deleted.status === 200) searchArchival($('archival-query').value);
    });
    return element('li', {}, element('span', { textContent: m.text }), remove);
  }));
}

/** The documents the agent was given, with how far Letta has processed each. */
async function loadDocuments() {
  const reply = await api.call('GET', '/api/v1/agent/files');
  if (reply.status !== 200) return;
  $('document-list').replaceChildren(...reply.body.files.map((f) => {
    const remove = element('button', { type: 'button', textContent: 'Delete' });
    remove.setAttribute('aria-label', `Delete document ${f.name}`);
    remove.addEventListener('click', async () => {
      const deleted = await api.call('DELETE', `/api/v1/agent/files/${encodeURIComponent(f.id)}`);
      if (deleted.status === 200) loadDocuments();
    });
    const item = element('li', {}, element('span', { textContent: `${f.name} (${f.status})` }), remove);
    item.dataset.status = f.status;
    return item;
  }));
  // Still being parsed or embedded: look again shortly.
  if (reply.body.files.some((f) => !['completed', 'error'].includes(f.status))) setTimeout(loadDocuments, 1000);
}

const SVG = 'http://www.w3.org/2000/svg';

async function loadUsage() {
  const [usage, budget] = await Promise.all([
    api.call('GET', '/api/v1/user/usage'),
    api.call('GET', '/api/v1/user/budget'),
  ]);
  if (usage.status === 200) {
    const days = usage.body.days;
    const top = Math.max(...days.map((d) => d.cost_usd), 0.000001);
    const width = 300 / days.length;
    const chart = $('usage-chart');
    chart.replaceChildren(...days.map((d, i) => {
      const height = (d.cost_usd / top) * 95;
      const bar = document.createElementNS(SVG, 'rect');
      for (const [k, v] of Object.entries({ x: i * width + 1, y: 100 - height, width: width - 2, height })) bar.setAttribute(k, v);
      bar.dataset.date = d.date;
      bar.dataset.cost = d.cost_usd;
      const title = document.createElementNS(SVG, 'title');
      title.textContent = `${d.date}: $${d.cost_usd.toFixed(4)}, ${d.messages} messages`;
      bar.append(title);
      return bar;
    }));
  }
  if (budget.status === 200) {
    const { spend = 0, max_budget: limit } = budget.body;
    const share = limit ? Math.min(1, spend / limit) : 1;
    $('budget-spent').style.width = `${share * 100}%`;
    const meter = $('budget-bar');
    meter.setAttribute('aria-valuemax', String(limit ?? 0));
    meter.setAttribute('aria-valuenow', String(spend));
    $('budget-text').textContent = `Spent $${spend.toFixed(2)} of $${(limit ?? 0).toFixed(2)} per budget period (${budget.body.budget_duration ?? '—'}).`;
    $('budget-label').textContent = `${PERIODS[budget.body.budget_duration] ?? 'Budget per period'} (USD)`;
    // A refresh never overwrites an amount the user is typing.
    if (!$('budget-input').dataset.edited) $('budget-input').value = limit ?? 0;
  }
}

/** The budget label for each period LiteLLM may reset on. */
const PERIODS = {
  '1d': 'Daily budget', '1w': 'Weekly budget', '1mo': 'Monthly budget',
  '3mo': 'Quarterly budget', '6mo': 'Half-yearly budget', '1y': 'Yearly budget',
};

async function showApp() {
  $('auth').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  const me = await api.call('GET', '/api/v1/auth/me');
  if (me.status === 200) $('who').textContent = `Signed in as ${me.body.profile.display_name ?? me.body.user.email}`;
  await Promise.all([loadConversations(), loadHistory(), loadMemory(), loadDocuments(), loadUsage()]);
  $('message').focus();
}

function showSignIn(message) {
  $('auth').hidden = false;
  $('app').hidden = true;
  $('logout').hidden = true;
  $('who').textContent = '';
  notice('auth-notice', message);
}

async function authenticate(path) {
  const form = $('auth-form');
  if (!form.reportValidity()) return;
  const fields = { email: $('email').value, password: $('password').value };
  if (path.endsWith('register') && $('display-name').value) fields.display_name = $('display-name').value;
  const reply = await api.signIn(path, fields);
  if (reply.body?.session) return showApp();
  if (reply.status === 202) return notice('auth-notice', 'Check your email to confirm your address, then log in.');
  notice('auth-notice', explain(reply.status, reply.body?.error));
}

$('auth-form').addEventListener('submit', (e) => { e.preventDefault(); authenticate('/api/v1/auth/login'); });
$('register').addEventListener('click', () => authenticate('/api/v1/auth/register'));
$('logout').addEventListener('click', async () => { await api.signOut(); showSignIn('Signed out.'); });
$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  const text = $('message').value.trim();
  if (!text || state.busy) return;
  $('message').value = '';
  send(text).then(loadUsage);
});
$('message').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); $('composer').requestSubmit(); }
});
// Stop cancels the turn at the server, so the agent stops and stops spending; the stream then
// ends with `done` (`cancelled`). With nothing to cancel there (not started yet, or already
// ending) or the server unreachable, only this page stops reading.
async function stop() {
  const busy = state.busy;
  if (!busy) return;
  $('stop').disabled = true;
  const id = encodeURIComponent(state.conversation ?? 'default');
  const answer = await api.call('POST', `/api/v1/conversations/${id}/cancel`).catch(() => null);
  $('stop').disabled = false;
  if (answer?.status !== 202 && state.busy === busy) busy.abort();
}
$('stop').addEventListener('click', stop);
// Record: the microphone until clicked again ("Send recording"), then the recording goes as a
// voice message: the server transcribes it and the transcript replaces "Voice message…".
async function record() {
  const button = $('record');
  if (state.recorder) return state.recorder.stop();
  if (state.busy) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch {
    return notice('chat-notice', 'The microphone is not available.');
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.addEventListener('dataavailable', (e) => chunks.push(e.data));
  recorder.addEventListener('stop', () => {
    stream.getTracks().forEach((track) => track.stop());
    state.recorder = null;
    button.textContent = 'Record';
    button.setAttribute('aria-pressed', 'false');
    notice('chat-notice', '');
    const audio = new Blob(chunks, { type: recorder.mimeType });
    if (audio.size > 0) sendVoice(audio).then(loadUsage);
  });
  recorder.start();
  state.recorder = recorder;
  button.textContent = 'Send recording';
  button.setAttribute('aria-pressed', 'true');
  notice('chat-notice', 'Recording… press Send recording when you are done.');
}
$('record').addEventListener('click', record);
$('retry').addEventListener('click', () => state.again?.().then(loadUsage));
$('older').addEventListener('click', () => loadHistory(true));
$('new-conversation').addEventListener('click', async () => {
  const made = await api.call('POST', '/api/v1/conversations', {});
  if (made.status === 201) { state.conversation = made.body.id; await loadConversations(); await loadHistory(); }
});
$('refresh-memory').addEventListener('click', () => { loadMemory(); searchArchival($('archival-query').value); });
$('refresh-documents').addEventListener('click', loadDocuments);
$('document-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const file = $('document-input').files[0];
  if (!file) return;
  const uploaded = await api.upload(file);
  notice('chat-notice', uploaded.status === 201 ? `${file.name} uploaded.` : explain(uploaded.status, uploaded.body?.error));
  if (uploaded.status === 201) $('document-form').reset();
  loadDocuments();
});
$('archival-search').addEventListener('submit', (e) => { e.preventDefault(); searchArchival($('archival-query').value); });
$('refresh-usage').addEventListener('click', loadUsage);
$('budget-input').addEventListener('input', (e) => { e.target.dataset.edited = 'yes'; });
$('budget-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  delete $('budget-input').dataset.edited;
  const reply = await api.call('POST', '/api/v1/user/budget', { max_budget: Number($('budget-input').value) });
  notice('chat-notice', reply.status === 200 ? 'Budget updated.' : explain(reply.status, reply.body?.error));
  loadUsage();
});

api.whenSignedOut(showSignIn);
if (api.signedIn()) showApp(); else showSignIn('');
