// The console in a real browser: Debian's Chromium driven by playwright-core, against a real
// server started by tests/tests/e2e/console.rs, which passes in env:
//   LOYALTY_SERVER           the server's URL
//   LOYALTY_ADMIN_TOKEN      a named admin's token      LOYALTY_SUPPORT_TOKEN  a support operator's
//   LOYALTY_CARD_NUMBER      the member's card number   LOYALTY_BALANCE        their balance now
//   LOYALTY_REQUEST_SUBJECT  a request subject holding markup, which must stay text
//   LOYALTY_CONSOLE_MODULES  where playwright-core is installed
//   LOYALTY_SCREENSHOTS      (optional) a folder for a screenshot of each page
// Any failed assertion throws: the exit status is not 0 and stderr says what failed.
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set`);
  return value;
};
const server = env('LOYALTY_SERVER');
const modules = env('LOYALTY_CONSOLE_MODULES');
const { chromium } = createRequire(join(modules, 'noop.js'))('playwright-core');
const shots = process.env.LOYALTY_SCREENSHOTS;
if (shots) mkdirSync(shots, { recursive: true });

const profile = mkdtempSync(join(tmpdir(), 'console-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const page = context.pages()[0] || (await context.newPage());
const dialogs = [];
const problems = [];
page.on('dialog', (dialog) => {
  dialogs.push(dialog.message());
  dialog.dismiss().catch(() => {});
});
page.on('pageerror', (error) => problems.push('page error: ' + error.message));
page.on('console', (message) => {
  if (message.type() === 'error' && /Content.Security.Policy|Refused to/i.test(message.text())) {
    problems.push('console: ' + message.text());
  }
});
const byTestId = (id) => page.locator(`[data-testid="${id}"]`);
const shot = async (name) => {
  if (shots) await page.screenshot({ path: join(shots, name + '.png'), fullPage: true });
};
const report = {};

async function logIn(token, role) {
  await page.goto(server + '/console');
  await byTestId('login-token').fill(token);
  await byTestId('login-submit').click();
  await byTestId('role').waitFor();
  assert.equal(await byTestId('role').textContent(), role);
}

async function logOut() {
  await byTestId('logout').click();
  await byTestId('login-form').waitFor();
  const after = await page.evaluate(async () => (await fetch('/console/session')).status);
  assert.equal(after, 401, 'the session is over after logout');
}

async function openMember(cardNumber) {
  await page.goto(server + '/console#/members');
  await byTestId('search-by').selectOption('card_number');
  await byTestId('search-value').fill(cardNumber);
  await byTestId('search-submit').click();
  await byTestId('members-table').waitFor();
  const links = byTestId('member-link');
  assert.equal(await links.count(), 1, 'one member has this card number');
  assert.equal(await links.first().textContent(), cardNumber);
  await links.first().click();
  await byTestId('member-card').waitFor();
}

async function balanceIs(expected) {
  await page.waitForFunction(
    (want) => document.querySelector('[data-testid="balance"]')?.textContent === want,
    String(expected),
  );
}

async function adjust(points) {
  await byTestId('adjust-points').fill(String(points));
  await byTestId('adjust-note').fill('Console test');
  await byTestId('adjust-submit').click();
}

try {
  const cardNumber = env('LOYALTY_CARD_NUMBER');
  const balance = Number(env('LOYALTY_BALANCE'));
  const subject = env('LOYALTY_REQUEST_SUBJECT');

  // An admin: the whole menu, the member found by card number, an adjustment seen at once.
  await page.goto(server + '/console');
  await byTestId('login-form').waitFor();
  await shot('login');
  const wrong = byTestId('login-error');
  await byTestId('login-token').fill('not-a-token');
  await byTestId('login-submit').click();
  await wrong.waitFor();
  assert.match(await wrong.textContent(), /wrong/);
  await logIn(env('LOYALTY_ADMIN_TOKEN'), 'admin');
  assert.equal(await byTestId('menu-audit').count(), 1, 'admins see the audit log');
  // The list without a search, and its status filter.
  await byTestId('members-table').waitFor();
  assert.equal(await byTestId('member-link').count(), 1);
  await byTestId('filter-status').selectOption('blocked');
  await byTestId('search-submit').click();
  await page.getByText('No members found.').waitFor();
  await shot('members');
  await openMember(cardNumber);
  await balanceIs(balance);
  // The whole ledger with the till and receipt behind each movement, and the member's phone
  // with when it was last seen.
  const ledger = byTestId('ledger');
  assert.match(await ledger.textContent(), /R-console-1/);
  assert.match(await ledger.textContent(), /till-7/);
  const devices = byTestId('devices');
  assert.match(await devices.textContent(), /phone/);
  assert.doesNotMatch(await devices.textContent(), /never/, 'the phone synced: it was seen');
  assert.equal(await byTestId('revoke-device').count(), 1, 'one live device an admin may revoke');
  await shot('member');
  await adjust(25);
  await balanceIs(balance + 25);
  report.adjusted = balance + 25;

  // An admin blocks and unblocks the card.
  await byTestId('block').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="status"]')?.textContent === 'blocked');
  await byTestId('unblock').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="status"]')?.textContent === 'active');

  // The request subject is text on the member's page and on the requests page, and is answered.
  const shown = byTestId('request-subject');
  assert.equal(await shown.first().textContent(), subject);
  await page.goto(server + '/console#/requests');
  await byTestId('request').first().waitFor();
  assert.equal(await byTestId('request-subject').first().textContent(), subject);
  assert.equal(await page.locator('main img').count(), 0, 'no element was injected');
  await shot('requests');
  await byTestId('reply-body').first().fill('We are on it');
  await byTestId('reply-submit').first().click();
  await page.waitForFunction(() => !document.querySelector('[data-testid="request"]'));
  await byTestId('requests-status').selectOption('answered');
  await byTestId('request').first().waitFor();
  assert.match(await byTestId('request').first().textContent(), /We are on it/);

  // The programme's validation error shows in place.
  await page.goto(server + '/console#/programme');
  await byTestId('programme-json').waitFor();
  await byTestId('programme-json').fill('{"no_such_setting": 1}');
  await byTestId('programme-save').click();
  await byTestId('programme-error').waitFor();
  report.programmeRefusal = await byTestId('programme-error').textContent();
  assert.match(report.programmeRefusal, /no_such_setting|unknown/);
  await shot('programme');

  // The liability report draws its chart with Chart.js.
  await page.goto(server + '/console#/liability');
  await byTestId('expiring-chart').waitFor();
  const charted = await page.evaluate(
    () => Boolean(window.Chart && window.Chart.getChart(document.querySelector('[data-testid="expiring-chart"]'))),
  );
  assert.ok(charted, 'Chart.js drew the expiring points');
  const csv = await page.evaluate(async () => {
    const link = document.querySelector('[data-testid="liability-csv"]');
    const response = await fetch(link.href);
    return { type: response.headers.get('content-type'), text: await response.text() };
  });
  assert.match(csv.type, /text\/csv/);
  assert.match(csv.text, /^measure,points,value_minor\n/);
  await shot('liability');
  await page.goto(server + '/console#/audit');
  await byTestId('audit-table').waitFor();
  assert.match(await byTestId('audit-table').textContent(), /adjustments/);
  await shot('audit');
  await logOut();

  // Support: no audit log in the menu, and an adjustment over its limit refused in place.
  await logIn(env('LOYALTY_SUPPORT_TOKEN'), 'support');
  assert.equal(await byTestId('menu-audit').count(), 0, 'support does not see the audit log');
  await page.goto(server + '/console#/audit');
  await byTestId('search-form').waitFor();
  assert.equal(await byTestId('audit-table').count(), 0, 'the audit page is not drawn for support');
  const refused = await page.evaluate(async () => {
    const response = await fetch('/v1/admin/audit');
    return { status: response.status, code: (await response.json()).error.code };
  });
  assert.deepEqual(refused, { status: 403, code: 'forbidden' }, 'the server refuses it anyway');
  await openMember(cardNumber);
  await adjust(5000);
  const refusal = byTestId('adjust-error');
  await refusal.waitFor();
  report.supportRefusal = await refusal.textContent();
  assert.match(report.supportRefusal, /at most/);
  await balanceIs(balance + 25);
  await shot('support-refused');
  await logOut();

  // A session that ends under the page (here: logged out from another tab) sends it to the login.
  await logIn(env('LOYALTY_SUPPORT_TOKEN'), 'support');
  await page.evaluate(async () => {
    const { csrf_token: token } = await (await fetch('/console/session')).json();
    await fetch('/console/session', { method: 'DELETE', headers: { 'X-CSRF-Token': token } });
  });
  await byTestId('menu-requests').click();
  await byTestId('login-form').waitFor();
  assert.equal(await byTestId('role').count(), 0, 'nobody is shown as logged in');

  assert.deepEqual(dialogs, [], 'no dialog fired');
  assert.deepEqual(problems, [], 'no script error or policy violation');
  report.ok = true;
  console.log(JSON.stringify(report));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
