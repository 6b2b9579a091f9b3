// The web chat page in a real browser: Playwright (playwright-core) drives Debian's Chromium,
// headless, against a running gateway. Usage: node chat.mjs BASE_URL SCREENSHOT_DIR, with
// PLAYWRIGHT_CORE naming playwright-core's index.mjs and AXE_CORE axe-core's axe.min.js
// (install.sh browser puts both in .state/). Exits non-zero, naming the step, when the page does
// not behave as a user expects or a view has an accessibility violation (WCAG 2.1 A/AA).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

const { chromium } = await import(process.env.PLAYWRIGHT_CORE ?? 'playwright-core');

const [base, shots] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    // A microphone that plays a test tone, allowed without asking: the Record button's input.
    '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream'],
});
const step = (name) => console.log(`step: ${name}`);
const axeSource = readFileSync(process.env.AXE_CORE, 'utf8');

/** axe-core over the page as it is now: no violation of WCAG 2.1 A or AA. (Evaluated through
 * the DevTools protocol, which the page's Content-Security-Policy does not govern.) */
async function accessible(page, view) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() => window.axe.run(document, {
    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
  }));
  const found = result.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  assert.deepEqual(found, [], `${view}: accessibility violations`);
}

let page;
try {
  page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  page.setDefaultTimeout(60_000);
  // What the page itself reports, for a failure's output.
  page.on('console', (m) => console.log(`console.${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => console.log(`page error: ${e.message}`));
  await page.goto(base);
  await page.screenshot({ path: `${shots}/sign-in.png` });
  await accessible(page, 'sign-in');

  step('register');
  const email = `ada-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct-horse-battery');
  await page.getByLabel('Your name (for a new account)').fill('Ada');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.locator('#app').waitFor({ state: 'visible' });

  step('the reply grows token by token');
  // Every text the reply shows on its way, recorded in the page as it changes (trimmed: the
  // rendered Markdown's block elements add line breaks around it).
  await page.evaluate(() => {
    window.replyStates = [];
    new MutationObserver(() => {
      const reply = document.querySelector('#messages .assistant:last-of-type .text');
      const text = reply?.textContent.trim();
      if (reply && text !== window.replyStates.at(-1)) window.replyStates.push(text);
    }).observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
  });
  const composer = page.getByRole('textbox', { name: 'Message', exact: true });
  await composer.fill('my name is Ada');
  await composer.press('Enter');
  const reply = page.locator('#messages .assistant').last();
  await reply.and(page.locator('[data-status="complete"]')).waitFor();
  const states = await page.evaluate(() => window.replyStates.filter((s) => s.length > 0));
  const final = (await reply.locator('.text').textContent()).trim();
  assert.ok(final.length > 0, 'the reply has text');
  const intermediate = states.filter((s) => s !== final && final.startsWith(s));
  assert.ok(intermediate.length >= 2, `the reply grew through ${intermediate.length} states: ${JSON.stringify(states)}`);
  await page.screenshot({ path: `${shots}/chat.png` });
  await accessible(page, 'chat');

  step('history after a reload');
  await page.reload();
  await page.locator('#messages .assistant').first().waitFor();
  const texts = (await page.locator('#messages .text').allTextContents()).map((t) => t.trim());
  assert.ok(texts.includes('my name is Ada'), `history: ${JSON.stringify(texts)}`);
  assert.ok(texts.includes(final), `history has the reply: ${JSON.stringify(texts)}`);

  step('the agent remembers');
  await composer.fill('what is my name?');
  await page.getByRole('button', { name: 'Send' }).click();
  await page.locator('#messages .assistant[data-status="complete"]').nth(1).waitFor();
  const answer = await page.locator('#messages .assistant .text').last().textContent();
  assert.match(answer, /Ada/);

  step('replies render Markdown and nothing in them runs');
  await page.evaluate(() => { window.injected = 0; });
  await composer.fill('Here is **bold** text\n\n```\nlet x = 1;\n```\n\n'
    + '<img src=x onerror="window.injected=1">\n\n[a link](javascript:window.injected=2)');
  await composer.press('Enter');
  const rendered = page.locator('#messages .assistant[data-status="complete"]').nth(2);
  await rendered.waitFor();
  assert.equal(await rendered.locator('.text strong').first().textContent(), 'bold');
  assert.match(await rendered.locator('.text pre code').textContent(), /let x = 1;/);
  await rendered.getByRole('button', { name: 'Copy code' }).waitFor();
  assert.equal(await rendered.locator('img').count(), 0, 'no image element from the reply');
  assert.match(await rendered.locator('.text').textContent(), /<img src=x onerror/, 'raw HTML shows as text');
  const hrefs = await rendered.locator('a').evaluateAll((links) => links.map((a) => a.getAttribute('href')));
  assert.ok(hrefs.every((h) => h === null || !/^javascript:/i.test(h)), `links: ${JSON.stringify(hrefs)}`);
  assert.equal(await page.evaluate(() => window.injected), 0, 'nothing in the reply ran');
  await accessible(page, 'a Markdown reply');

  step('Stop stops the reply at the server');
  // A slow reply (a word every 300 ms); Stop once its first words show: the server cancels
  // the turn, the stream ends with `done` (`cancelled`) and the reply keeps what arrived.
  await composer.fill('/slow 300 please count slowly from one to a very large number of sheep in the meadow today');
  await composer.press('Enter');
  const stopping = page.locator('#messages .assistant').nth(3);
  await stopping.locator('.text').filter({ hasText: /\S/ }).waitFor();
  await page.getByRole('button', { name: 'Stop' }).click();
  await page.locator('#messages .assistant[data-status="cancelled"]').waitFor({ timeout: 5_000 });
  await page.locator('#chat-notice', { hasText: 'Stopped' }).waitFor();
  const kept = (await stopping.locator('.text').textContent()).trim();
  assert.ok(kept.length > 0 && !kept.includes('meadow today'), `the reply stopped part-way: ${kept}`);
  await accessible(page, 'a stopped reply');

  step('a recorded voice message is transcribed and answered');
  // Chromium's fake microphone records a tone; the scripted transcription hears its fixed
  // sentence in any recording that is not WAV.
  await page.getByRole('button', { name: 'Record' }).click();
  await page.getByRole('button', { name: 'Send recording' }).waitFor();
  await page.waitForTimeout(1_500);
  await page.getByRole('button', { name: 'Send recording' }).click();
  const heard = 'Hello from a voice message.';
  await page.locator('#messages .user .text', { hasText: heard }).waitFor();
  const voiced = page.locator('#messages .assistant[data-status="complete"]').nth(3);
  await voiced.waitFor();
  assert.match(await voiced.locator('.text').textContent(), /echo: Hello from a voice message\./);
  await accessible(page, 'a voice message');

  step('a document given to the agent is read by it');
  await page.getByLabel('Give the agent a document (text, Markdown or PDF)').setInputFiles({
    name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('Notes\nThe launch code is PELICAN-42.\n'),
  });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#document-list li[data-status="completed"]', { hasText: 'notes.txt' }).waitFor();
  await composer.fill('What does my document say about launch code?');
  await composer.press('Enter');
  const read = page.locator('#messages .assistant[data-status="complete"]').nth(4);
  await read.waitFor();
  assert.match(await read.locator('.text').textContent(), /PELICAN-42/);
  await accessible(page, 'documents');

  step('memory panel');
  await page.getByRole('button', { name: 'Refresh' }).first().click();
  await page.waitForFunction(() => document.getElementById('block-human')?.value.includes('Ada'));

  step('usage chart');
  const today = new Date().toISOString().slice(0, 10);
  await page.getByRole('button', { name: 'Refresh' }).nth(1).click();
  const bar = page.locator(`#usage-chart rect[data-date="${today}"]`);
  await bar.waitFor({ state: 'attached' });
  assert.ok(Number(await bar.getAttribute('data-cost')) > 0, 'a bar for today');
  assert.ok(Number(await bar.getAttribute('height')) > 0, 'the bar is drawn');
  await page.screenshot({ path: `${shots}/memory-and-usage.png`, fullPage: true });
  await accessible(page, 'memory and usage');

  step('a budget of 0 stops the next message');
  await page.getByLabel('Monthly budget (USD)').fill('0');
  await page.getByRole('button', { name: 'Set budget' }).click();
  await page.locator('#chat-notice', { hasText: 'Budget updated' }).waitFor();
  // The very next message is refused (the backend enforces a budget at or below the spend
  // before the agent is called) and nothing is added to the conversation.
  const replies = page.locator('#messages .assistant');
  const before = await replies.count();
  await composer.fill('one more thing');
  await composer.press('Enter');
  await page.locator('#chat-notice', { hasText: 'budget is used up' }).waitFor({ timeout: 15_000 });
  assert.match(await page.locator('#chat-notice').textContent(), /of \$0\.00/, 'the limit set');
  assert.equal(await replies.count(), before, 'no reply to a refused message');
  assert.equal(await page.locator('#messages .message').last().getAttribute('data-status'), 'failed');
  await page.screenshot({ path: `${shots}/budget-used-up.png` });

  step('keyboard and a narrow screen');
  await page.setViewportSize({ width: 390, height: 844 });
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement?.tagName);
  assert.ok(focused && focused !== 'BODY', 'Tab moves the focus to a control');
  await page.screenshot({ path: `${shots}/mobile.png`, fullPage: true });
  await accessible(page, 'a narrow screen');

  step('log out');
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.locator('#auth').waitFor({ state: 'visible' });
  console.log('browser test passed');
} catch (e) {
  await page?.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
  const html = await page?.locator('#messages').innerHTML().catch(() => '');
  console.log(`messages at the failure: ${html}`);
  throw e;
} finally {
  await browser.close();
}
