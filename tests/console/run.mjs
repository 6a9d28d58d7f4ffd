// The console in a real browser: Debian's Chromium driven by playwright-core, against a real
// server started by tests/tests/e2e/console.rs, which passes in env:
//   LOYALTY_SERVER           the server's URL
//   LOYALTY_ADMIN_TOKEN      a named admin's token      LOYALTY_SUPPORT_TOKEN  a support operator's
//   LOYALTY_CARD_NUMBER      the member's card number   LOYALTY_BALANCE        their balance now
//   LOYALTY_MEMBER_ID        the member's id (whose code the till scanned twice: one refused)
//   LOYALTY_REQUEST_SUBJECT  a request subject holding markup, which must stay text
//   LOYALTY_NOW_MS           the server's clock            LOYALTY_EARNED  points the purchase earned
//   LOYALTY_SEGMENT          a computed segment of every member (the one member), which the
//                            browser also sends a message to (its id and subject in the report)
//   (and two sends to the member: an in-app service message, a marketing SMS without consent)
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
const confirms = [];
const problems = [];
// The console asks before ending, deleting and disabling (confirm(), accepted here); any other
// dialog (an alert from injected markup) is a failure.
page.on('dialog', (dialog) => {
  if (dialog.type() === 'confirm') {
    confirms.push(dialog.message());
    dialog.accept().catch(() => {});
    return;
  }
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

/** The row of table `tableId` whose cell `cellId` says exactly `text`. */
function rowOf(tableId, cellId, text) {
  return byTestId(tableId).locator('tbody tr').filter({
    has: page.locator(`[data-testid="${cellId}"]`, { hasText: new RegExp('^' + text + '$') }),
  });
}

/** Waits until `locator` is one element reading `expected` (the page redraws after each write). */
async function textIs(locator, expected) {
  for (let i = 0; i < 400; i += 1) {
    if ((await locator.count()) === 1 && (await locator.textContent()) === String(expected)) return;
    await page.waitForTimeout(50);
  }
  assert.equal(await locator.count(), 1, 'one element for ' + expected);
  assert.equal(await locator.textContent(), String(expected));
}

/** Whether Chart.js drew a chart on the canvas `testid`. */
async function charted(testid) {
  await byTestId(testid).waitFor();
  return page.evaluate(
    (id) => Boolean(window.Chart && window.Chart.getChart(document.querySelector(`[data-testid="${id}"]`))),
    testid,
  );
}

/** The CSV behind a page's download link: its content type and text. */
async function csvOf(testid) {
  return page.evaluate(async (id) => {
    const response = await fetch(document.querySelector(`[data-testid="${id}"]`).href);
    return { type: response.headers.get('content-type'), text: await response.text() };
  }, testid);
}

const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);
const DAY = 86_400_000;

async function adjust(points) {
  await byTestId('adjust-points').fill(String(points));
  await byTestId('adjust-note').fill('Console test');
  await byTestId('adjust-submit').click();
}

// Segments with their sizes; a segment defined, refused with bad rules, edited and deleted; an offer
// published to the computed segment, reaching its member; a running offer's segment not deletable;
// End changing the status shown.
async function segmentsAndOffers(segment, nowMs) {
  await page.goto(server + '/console#/segments');
  await byTestId('segments-table').waitFor();
  await textIs(rowOf('segments-table', 'segment-id', segment).locator('[data-testid="segment-members"]'), 1);
  await byTestId('segment-id-input').fill('gold-buyers');
  await byTestId('segment-name').fill('Gold buyers');
  await byTestId('segment-rules').fill('{"tierz": ["gold"]}');
  await byTestId('segment-submit').click();
  await byTestId('segment-form-error').waitFor();
  assert.match(await byTestId('segment-form-error').textContent(), /tierz|unknown/);
  await byTestId('segment-rules').fill('{"tiers": ["gold"]}');
  await byTestId('segment-submit').click();
  const gold = rowOf('segments-table', 'segment-id', 'gold-buyers');
  await textIs(gold.locator('[data-testid="segment-members"]'), 0);
  assert.match(await gold.textContent(), /tiers gold/);
  assert.match(await gold.textContent(), /not yet/, 'not computed until the batch job runs');
  await gold.locator('[data-testid="segment-edit"]').click();
  await byTestId('segment-name').fill('Gold and silver buyers');
  await byTestId('segment-rules').fill('{"tiers": ["gold", "silver"]}');
  await byTestId('segment-submit').click();
  await page.getByText('tiers gold, silver').waitFor();
  assert.match(await gold.textContent(), /Gold and silver buyers/);
  await gold.locator('[data-testid="segment-delete"]').click();
  for (let i = 0; i < 400 && (await gold.count()) > 0; i += 1) await page.waitForTimeout(50);
  assert.equal(await gold.count(), 0, 'the deleted segment is gone');
  await shot('segments');

  await page.goto(server + '/console#/offers');
  await byTestId('publish-form').waitFor();
  await page.waitForFunction(
    (id) => [...(document.querySelector('[data-testid="publish-segment"]')?.options || [])].some((o) => o.value === id),
    segment,
  );
  await byTestId('publish-id').fill('console-coffee');
  await byTestId('publish-title').fill('Double coffee points');
  await byTestId('publish-reward').selectOption('fixed_points');
  await byTestId('publish-value').fill('50');
  await byTestId('publish-from').fill(isoDay(nowMs - DAY));
  await byTestId('publish-until').fill(isoDay(nowMs - 2 * DAY));
  await byTestId('publish-segment').selectOption(segment);
  await byTestId('publish-submit').click();
  await byTestId('publish-error').waitFor();
  assert.match(await byTestId('publish-error').textContent(), /end after it starts/);
  await byTestId('publish-until').fill(isoDay(nowMs + 30 * DAY));
  await byTestId('publish-submit').click();
  await byTestId('publish-done').waitFor();
  assert.match(await byTestId('publish-done').textContent(), /1 members reached/);
  const offer = rowOf('offers-table', 'offer-id', 'console-coffee');
  await textIs(offer.locator('[data-testid="offer-reach"]'), 1);
  await textIs(offer.locator('[data-testid="offer-status"]'), 'active');
  assert.match(await offer.textContent(), new RegExp('segment ' + segment));
  report.offer = 'console-coffee';

  // Its uptake by segment: the segment's one member was reached; the CSV is the API's.
  await offer.locator('[data-testid="offer-uptake"]').click();
  await byTestId('uptake-table').waitFor();
  const uptakeRow = byTestId('uptake-table').locator('tbody tr').filter({ hasText: segment }).first();
  await textIs(uptakeRow.locator('[data-testid="uptake-members"]'), 1);
  await textIs(uptakeRow.locator('[data-testid="uptake-reached"]'), 1);
  const uptakeCsv = await csvOf('uptake-csv');
  assert.match(uptakeCsv.type, /text\/csv/);
  assert.match(uptakeCsv.text, /^segment_id,name,members,reached,activated,used_by,uses\n/);
  await shot('uptake');
  await page.goto(server + '/console#/offers');
  await byTestId('offers-table').waitFor();

  // The segment a running offer targets cannot be deleted: the API's 409, in place.
  await page.goto(server + '/console#/segments');
  await rowOf('segments-table', 'segment-id', segment).locator('[data-testid="segment-delete"]').click();
  await byTestId('segments-error').waitFor();
  assert.match(await byTestId('segments-error').textContent(), /offer/);
  await textIs(rowOf('segments-table', 'segment-id', segment).locator('[data-testid="segment-members"]'), 1);

  await page.goto(server + '/console#/offers');
  await offer.locator('[data-testid="offer-end"]').click();
  await textIs(offer.locator('[data-testid="offer-status"]'), 'ended');
  assert.equal(await offer.locator('[data-testid="offer-end"]').count(), 0, 'an ended offer cannot end again');
  await shot('offers');
  await byTestId('offers-status').selectOption('active');
  await page.getByText('No offers.').waitFor();
  await byTestId('offers-status').selectOption('ended');
  await textIs(offer.locator('[data-testid="offer-reach"]'), 1);
  // Paging: the setup's 25 upcoming offers push the last of them to a second page.
  await byTestId('offers-status').selectOption('upcoming');
  await byTestId('offers-next').waitFor();
  assert.equal(await offer.count(), 0, 'the ended offer is not upcoming');
  await byTestId('offers-status').selectOption('');
  await offer.waitFor();
  await byTestId('offers-next').click();
  await textIs(byTestId('offer-id'), 'z-later-24');
  await byTestId('offers-previous').click();
  await textIs(offer.locator('[data-testid="offer-status"]'), 'ended');
  assert.equal(await byTestId('offer-id').count(), 25, 'a page holds 25 offers');

  // A tier is a target too: the member's tier, `base`, reaches the member.
  await byTestId('publish-id').fill('console-tier');
  await byTestId('publish-title').fill('Base tier bonus');
  await byTestId('publish-value').fill('10');
  await byTestId('publish-from').fill(isoDay(nowMs - DAY));
  await byTestId('publish-until').fill(isoDay(nowMs + 30 * DAY));
  await byTestId('publish-target').selectOption('tier');
  await byTestId('publish-key').fill('base');
  await byTestId('publish-submit').click();
  const tier = rowOf('offers-table', 'offer-id', 'console-tier');
  await textIs(tier.locator('[data-testid="offer-reach"]'), 1);
  assert.match(await tier.textContent(), /tier base/);
}

// The points, members and deliveries reports: charts drawn, figures as the setup made them, CSVs.
async function reports(earned) {
  await page.goto(server + '/console#/reports/points');
  assert.ok(await charted('points-chart'), 'Chart.js drew the points per month');
  const total = byTestId('points-table').locator('tbody tr').last();
  assert.match(await total.textContent(), /^Total/);
  await textIs(total.locator('[data-testid="points-earned"]'), earned);
  await textIs(total.locator('[data-testid="points-adjusted"]'), 25);
  await textIs(total.locator('[data-testid="points-redeemed"]'), 0);
  assert.equal(await byTestId('redemption-rate').textContent(), '0.0%');
  await byTestId('points-period').selectOption('day');
  await page.waitForFunction(() => document.querySelector('[data-testid="points-csv"]')?.href.includes('period=day'));
  assert.ok(await charted('points-chart'), 'and per day');
  await textIs(byTestId('points-table').locator('tbody tr').last().locator('[data-testid="points-earned"]'), earned);
  const points = await csvOf('points-csv');
  assert.match(points.type, /text\/csv/);
  assert.match(points.text, /^period_start,earned,redeemed,expired,refunded,adjusted\n/);
  assert.match(points.text, new RegExp(',' + earned + ',0,0,0,25\n'));
  // A shorter window than the server's default is asked for in the server's time.
  await byTestId('points-window').selectOption('90');
  await page.waitForFunction(() => document.querySelector('[data-testid="points-csv"]')?.href.includes('from_ms='));
  await textIs(byTestId('points-table').locator('tbody tr').last().locator('[data-testid="points-earned"]'), earned);
  await shot('points');

  await page.goto(server + '/console#/reports/members');
  assert.ok(await charted('tiers-chart'), 'Chart.js drew the tiers');
  assert.equal(await byTestId('tiers-table').locator('tbody tr').count(), 1, 'one tier holds the member');
  await textIs(byTestId('memberstats-table').locator('tbody tr').first().locator('td').last(), 1);
  assert.match((await csvOf('memberstats-csv')).text, /^measure,value\nmembers,1\n/);
  // Tier movement: the member joined on base this month and is not moving down.
  assert.deepEqual(
    await byTestId('tiers-table').locator('tbody tr').first().locator('td').allTextContents(),
    ['base', '1', '1', '0'],
  );
  await textIs(byTestId('tier-moves-none'), 'Nobody changed tier in the last 30 days.');
  await shot('memberstats');

  // Segments and RFM: the batch job's run is listed with its joiners; the one member is counted
  // once in every dimension.
  await page.goto(server + '/console#/reports/segments');
  assert.ok(await charted('rfm-chart'), 'Chart.js drew the RFM scores');
  const rfmRows = byTestId('rfm-table').locator('tbody tr');
  assert.equal(await rfmRows.count(), 6, 'scores 0 to 5');
  for (const column of [1, 2, 3]) {
    let sum = 0;
    for (let row = 0; row < 6; row += 1) {
      sum += Number(await rfmRows.nth(row).locator('td').nth(column).textContent());
    }
    assert.equal(sum, 1, 'every member once per dimension');
  }
  assert.match(await page.locator('[data-testid^="segment-runs-"]').first().textContent(), /\+1/);
  // How the scores moved at the batch job's one run (none before it): a 6×6 table per dimension
  // in which the one member sits once, in the one shaded cell, the darkest.
  assert.match(await byTestId('rfm-moves').textContent(), /from the scores held before/);
  for (const dimension of ['recency', 'frequency', 'monetary']) {
    const cells = byTestId('rfm-moves-' + dimension).locator('tbody td');
    assert.equal(await cells.count(), 36, dimension + ': from 0–5 to 0–5');
    const counts = (await cells.allTextContents()).map(Number);
    assert.equal(counts.reduce((a, b) => a + b, 0), 1, dimension + ': every member once');
    const classes = await cells.evaluateAll((tds) => tds.map((td) => td.className));
    assert.deepEqual(classes.filter((c) => c !== 'heat-0'), ['heat-5'], dimension + ': one shaded cell');
    assert.equal(classes[counts.indexOf(1)], 'heat-5', dimension + ': the member\'s cell is shaded');
  }
  assert.match((await csvOf('rfm-csv')).text, /^row,id,computed_at_ms,members,joined,departed\nsegment,/);
  await shot('rfm');

  await page.goto(server + '/console#/reports/deliveries');
  assert.ok(await charted('deliveries-chart'), 'Chart.js drew the deliveries');
  await textIs(byTestId('deliveries-messages'), 2);
  await textIs(byTestId('deliveries-recipients'), 2);
  await textIs(byTestId('deliveries-no-consent'), 1);
  assert.match(await byTestId('deliveries-table').textContent(), /smsrefusedno_consent1/);
  await shot('deliveries');
  await byTestId('deliveries-message').fill('console-inapp');
  await byTestId('deliveries-submit').click();
  await textIs(byTestId('deliveries-messages'), 1);
  await textIs(byTestId('deliveries-no-consent'), 0);
  assert.match((await csvOf('deliveries-csv')).text, /^channel,status,reason,count\n/);
  await byTestId('deliveries-message').fill('no-such-send');
  await byTestId('deliveries-submit').click();
  await byTestId('deliveries-error').waitFor();
  assert.match(await byTestId('deliveries-error').textContent(), /no-such-send|no such|not found/i);
}

// The watch list: the member whose code the till scanned twice ranks by refused codes with 1,
// the refusal is listed by reason and charted, and the member's id leads to their page.
async function watchList(memberId, cardNumber) {
  assert.equal(await byTestId('menu-watch').count(), 1, 'the watch list is in the menu');
  await byTestId('menu-watch').click();
  await byTestId('watch-members').waitFor();
  const member = rowOf('watch-members', 'watch-member-link', memberId);
  await textIs(member.locator('[data-testid="watch-purchases"]'), 1);
  await byTestId('watch-by').selectOption('refused_codes');
  await page.waitForFunction(() => document.querySelector('[data-testid="watch-csv"]')?.href.includes('by=refused_codes'));
  await textIs(member.locator('[data-testid="watch-refused_codes"]'), 1);
  assert.match(await member.textContent(), new RegExp(cardNumber));
  await textIs(member.locator('[data-testid="watch-refund_rate"]'), '0.0%');
  const refusal = rowOf('watch-refusals', 'watch-refusal-reason', 'code_replayed');
  await textIs(refusal.locator('[data-testid="watch-refusal-source"]'), 'scan');
  await textIs(refusal.locator('[data-testid="watch-refusal-count"]'), 1);
  assert.ok(await charted('watch-chart'), 'Chart.js drew the refusals by reason');
  await byTestId('watch-days').selectOption('30');
  await page.waitForFunction(() => document.querySelector('[data-testid="watch-csv"]')?.href.includes('from_ms='));
  await textIs(rowOf('watch-members', 'watch-member-link', memberId).locator('[data-testid="watch-refused_codes"]'), 1);
  const csv = await csvOf('watch-csv');
  assert.match(csv.type, /text\/csv/);
  assert.match(csv.text, /scan:code_replayed,/);
  // The top 50, and members from 2 live devices: a number out of range is refused in place.
  await byTestId('watch-limit').selectOption('50');
  await page.waitForFunction(() => document.querySelector('[data-testid="watch-csv"]')?.href.includes('limit=50'));
  await byTestId('watch-min-devices').fill('1');
  await byTestId('watch-min-devices').dispatchEvent('change');
  await byTestId('watch-error').waitFor();
  assert.match(await byTestId('watch-error').textContent(), /min_devices must be 2 to 1000/);
  await byTestId('watch-min-devices').fill('2');
  await byTestId('watch-min-devices').dispatchEvent('change');
  await page.waitForFunction(() => document.querySelector('[data-testid="watch-csv"]')?.href.includes('min_devices=2'));
  assert.equal(await byTestId('watch-error').isHidden(), true, 'the error is gone with a good number');
  await textIs(rowOf('watch-members', 'watch-member-link', memberId).locator('[data-testid="watch-refused_codes"]'), 1);
  await shot('watch');
  await rowOf('watch-members', 'watch-member-link', memberId).locator('[data-testid="watch-member-link"]').click();
  await byTestId('member-card').waitFor();
  assert.equal(new URL(page.url()).hash, '#/members/' + encodeURIComponent(memberId));
  await textIs(byTestId('card-number'), cardNumber);
}

// An admin sends an in-app service message to the segment: no kind and an empty subject refused
// in place first, an answer lost and the send repeated under the same id, then the summary
// counting its one recipient, and its deliveries one click away.
async function sendMessage(segment, memberId) {
  const subject = 'Your card has a new look';
  assert.equal(await byTestId('menu-messages').count(), 1, 'admins send messages');
  await byTestId('menu-messages').click();
  await byTestId('message-form').waitFor();
  await page.waitForFunction(
    (id) => [...(document.querySelector('[data-testid="message-segment"]')?.options || [])].some((o) => o.value === id),
    segment,
  );
  const posted = [];
  page.on('request', (request) => {
    if (request.method() === 'POST' && request.url().endsWith('/v1/admin/messages')) posted.push(request.postDataJSON().id);
  });
  await byTestId('message-channel').selectOption('inapp');
  await byTestId('message-body').fill('Nothing changes for your points.');
  await byTestId('message-segment').selectOption(segment);
  // The kind has no default: unchosen, the API refuses it, in place.
  await byTestId('message-submit').click();
  await byTestId('message-error').waitFor();
  assert.match(await byTestId('message-error').textContent(), /kind must be one of marketing, service/);
  await byTestId('message-kind').selectOption('service');
  await byTestId('message-submit').click();
  await textIs(byTestId('message-error'), 'subject must be 1 to 512 bytes');
  assert.ok(await byTestId('message-summary').isHidden(), 'nothing was sent');
  await byTestId('message-subject').fill(subject);
  // The server sends, but its answer is lost on the way back: the page says the send failed, and
  // sending again reuses the page's id, so the member gets the message once.
  let lostStatus = 0;
  await page.route('**/v1/admin/messages', async (route) => {
    lostStatus = (await route.fetch()).status();
    await route.abort('connectionreset');
  }, { times: 1 });
  await byTestId('message-submit').click();
  await page.waitForFunction(() => document.querySelector('[data-testid="message-error"]')?.textContent.startsWith('No answer'));
  assert.match(await byTestId('message-error').textContent(), /may have gone out\. Send again as it is/);
  assert.equal(lostStatus, 201, 'the server did send before the answer was lost');
  assert.ok(await byTestId('message-summary').isHidden(), 'no summary without an answer');
  await byTestId('message-submit').click();
  await textIs(byTestId('message-recipients'), 1);
  await textIs(byTestId('message-sent'), 1);
  assert.ok(await byTestId('message-error').isHidden(), 'the refusal is gone');
  const id = await byTestId('message-sent-id').textContent();
  assert.match(id, /^msg-[0-9a-f]{24}$/, 'the page named the send');
  assert.equal(posted.length, 4, 'four sends asked: ' + posted.join(' '));
  assert.deepEqual(posted.slice(2), [id, id], 'the retry after the lost answer sent the same id');
  assert.equal(await byTestId('message-subject').inputValue(), '', 'the form is ready for another');
  assert.equal(await byTestId('message-kind').inputValue(), '', 'whose kind is chosen afresh');
  await shot('messages');
  await byTestId('message-deliveries-link').click();
  assert.equal(new URL(page.url()).hash, '#/reports/deliveries/' + id);
  await textIs(byTestId('deliveries-messages'), 1);
  await textIs(byTestId('deliveries-recipients'), 1);
  assert.equal(await byTestId('deliveries-message').inputValue(), id);
  const recipient = rowOf('delivery-recipients', 'delivery-member', memberId);
  await textIs(recipient.locator('[data-testid="delivery-status"]'), 'sent');
  assert.match(await recipient.textContent(), /inappservice/);
  await shot('message-deliveries');
  report.messageId = id;
  report.messageSubject = subject;

  // To listed members: none listed is the API's refusal in place; the member's id reaches them.
  await byTestId('menu-messages').click();
  await byTestId('message-kind').selectOption('marketing');
  await byTestId('message-subject').fill('Spring sale');
  await byTestId('message-audience').selectOption('members');
  assert.ok(await byTestId('message-segment').isHidden(), 'the segment gives way to the ids');
  await byTestId('message-submit').click();
  await textIs(byTestId('message-error'), 'give either `members` or `segment`');
  await byTestId('message-members').fill(' ' + memberId + ' , ');
  await byTestId('message-submit').click();
  await textIs(byTestId('message-recipients'), 1);
  await textIs(byTestId('message-in_inbox'), 1);
  assert.match(await byTestId('message-summary').textContent(), /marketing on inapp/);
  report.listedSubject = 'Spring sale';
}

// An admin creates an operator and sees the token once; another is disabled.
async function operators() {
  assert.equal(await byTestId('menu-operators').count(), 1, 'admins see the operators');
  await page.goto(server + '/console#/operators');
  await byTestId('operators-table').waitFor();
  await byTestId('operator-new-name').fill('Olga Ops');
  await byTestId('operator-new-role').selectOption('marketing');
  await byTestId('operator-create').click();
  await byTestId('operator-token').waitFor();
  const token = await byTestId('operator-token').textContent();
  assert.match(token, /^lop_/);
  assert.match(await byTestId('operator-created').textContent(), /will not be shown again/);
  await textIs(rowOf('operators-table', 'operator-name', 'Olga Ops').locator('td').nth(1), 'marketing');
  await shot('operators');
  await byTestId('operator-token-done').click();
  assert.equal(await byTestId('operator-token').count(), 0);
  await page.reload();
  await rowOf('operators-table', 'operator-name', 'Olga Ops').waitFor();
  assert.ok(!(await page.textContent('body')).includes(token), 'the token is not shown again');
  report.operatorToken = token;
  report.operatorName = 'Olga Ops';

  await byTestId('operator-new-name').fill('Dan Departed');
  await byTestId('operator-create').click();
  const dan = rowOf('operators-table', 'operator-name', 'Dan Departed');
  await dan.locator('[data-testid="operator-disable"]').click();
  for (let i = 0; i < 400 && (await dan.locator('[data-testid="operator-disable"]').count()) > 0; i += 1) {
    await page.waitForTimeout(50);
  }
  assert.notEqual(await dan.locator('[data-testid="operator-disabled"]').textContent(), '', 'disabled');
}

// Support reads offers but may not end or publish them, and has no operators page.
async function supportLimits() {
  assert.equal(await byTestId('menu-operators').count(), 0, 'support does not see the operators');
  assert.equal(await byTestId('menu-messages').count(), 0, 'support does not send messages');
  await page.goto(server + '/console#/messages');
  await byTestId('search-form').waitFor();
  assert.equal(await byTestId('message-form').count(), 0, 'the messages page is not drawn for support');
  await page.goto(server + '/console#/operators');
  await byTestId('search-form').waitFor();
  assert.equal(await byTestId('operators-table').count(), 0, 'the operators page is not drawn for support');
  const refused = await page.evaluate(async () => {
    const response = await fetch('/v1/admin/operators');
    return { status: response.status, code: (await response.json()).error.code };
  });
  assert.deepEqual(refused, { status: 403, code: 'forbidden' }, 'the server refuses it anyway');
  await page.goto(server + '/console#/offers');
  await byTestId('offers-table').waitFor();
  assert.equal(await byTestId('publish-form').count(), 0, 'support does not publish');
  assert.equal(await byTestId('offer-end').count(), 0, 'nor end offers');
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
  await segmentsAndOffers(env('LOYALTY_SEGMENT'), Number(env('LOYALTY_NOW_MS')));
  await reports(Number(env('LOYALTY_EARNED')));
  await sendMessage(env('LOYALTY_SEGMENT'), env('LOYALTY_MEMBER_ID'));
  await watchList(env('LOYALTY_MEMBER_ID'), env('LOYALTY_CARD_NUMBER'));
  await operators();
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
  // Every role reads the watch list.
  await byTestId('menu-watch').click();
  await byTestId('watch-refusals').waitFor();
  await supportLimits();
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
  assert.equal(confirms.length, 10,
    'asked before ending, deleting twice, sending six times and disabling: ' + confirms.join(' | '));
  assert.ok(confirms.some((c) => /^Send "Your card has a new look" \(service, inapp\) to segment Every member/.test(c)),
    'the question names the text, kind, channel and segment: ' + confirms.join(' | '));
  assert.deepEqual(problems, [], 'no script error or policy violation');
  report.ok = true;
  console.log(JSON.stringify(report));
} catch (error) {
  // What the page showed when it failed, for whoever reads the test's output.
  await shot('failure').catch(() => {});
  const shown = await page.textContent('main').catch(() => '(no page)');
  console.error('the page showed: ' + shown);
  throw error;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
