// The dashboard in headless Chromium (Debian's, driven by playwright-core; no browser is
// downloaded), against a tracker that scripts/test-dashboard started and fed: every page is
// compared with the API's own answers, and screenshots go to $SCREENSHOT_DIR.
//
// Environment: DASHBOARD_URL (the tracker's API, e.g. http://127.0.0.1:5000), EXPECTED_EVENTS
// (entries fed to the stream), ODD_PLAYER (a player id full of markup), SCREENSHOT_DIR,
// CHROMIUM (default /usr/bin/chromium).

import {test, before, after} from 'node:test';
import assert from 'node:assert/strict';
import {mkdtempSync, mkdirSync, rmSync} from 'node:fs';
import {tmpdir} from 'node:os';
import {join} from 'node:path';
import {chromium} from 'playwright-core';

const BASE = process.env.DASHBOARD_URL;
const EXPECTED_EVENTS = Number(process.env.EXPECTED_EVENTS || '0');
const ODD_PLAYER = process.env.ODD_PLAYER || '';
const SHOTS = process.env.SCREENSHOT_DIR || 'target/dashboard-screenshots';
const PRODUCT = 'exrps';
assert.ok(BASE, 'DASHBOARD_URL must be set');

let context;
let page;
let profile;
const problems = [];

const api = async (path) => {
  const response = await fetch(`${BASE}${path}`);
  assert.equal(response.status, 200, `GET ${path}`);
  return response.json();
};
const seg = encodeURIComponent;
const formatNumber = (n) => (Number.isInteger(n) ? String(n) : n.toFixed(1));
const shot = (name) => page.screenshot({path: join(SHOTS, `${name}.png`), fullPage: true});

/** Waits until the page shows the route in its address bar, then for `selector`. */
async function rendered(selector) {
  await page.waitForFunction(() => document.body.dataset.shown === location.hash);
  await page.waitForSelector(selector);
}

/** Opens a dashboard route (a new hash of the same page re-renders without a load). */
async function open(hash, selector) {
  await page.goto(`${BASE}/dashboard/${hash}`);
  await rendered(selector);
}

/** The ranks table's rows as the API shapes entries, plus what each row shows. */
async function shownRanks() {
  return page.$$eval('#ranks tbody tr', (rows) => rows.map((row) => ({
    user_id: row.dataset.user,
    rank: Number(row.dataset.rank),
    score: Number(row.dataset.score),
    shown: [...row.cells].map((cell) => cell.textContent),
  })));
}

async function assertRanksMatch(query, label) {
  const answer = await api(`/v1/products/${PRODUCT}/boards/${query}`);
  const shown = await shownRanks();
  assert.deepEqual(
    shown.map(({user_id, rank, score}) => ({user_id, rank, score})),
    answer.entries,
    `${label}: rows differ from the API`,
  );
  for (const row of shown) {
    assert.deepEqual(row.shown, [String(row.rank), row.user_id, formatNumber(row.score)], label);
  }
  return answer;
}

/** Waits until the hash has changed from `from` and the new page is rendered. */
async function afterNavigation(from, selector) {
  await page.waitForFunction((old) => location.hash !== old, from);
  await rendered(selector);
}

before(async () => {
  mkdirSync(SHOTS, {recursive: true});
  const deadline = Date.now() + 60_000;
  for (;;) {
    const health = await api('/v1/health/worker');
    if (health.events_total >= EXPECTED_EVENTS && health.consumer_lag === 0) break;
    assert.ok(Date.now() < deadline, `the worker did not catch up: ${JSON.stringify(health)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  profile = mkdtempSync(join(tmpdir(), 'dashboard-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: {width: 1200, height: 800},
    colorScheme: 'light',
  });
  page = context.pages()[0] || await context.newPage();
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  // The page must reach nothing but the tracker.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(BASE) || url.startsWith('data:')) return route.continue();
    problems.push(`request elsewhere: ${url}`);
    return route.abort();
  });
});

after(async () => {
  if (context) await context.close();
  // Chromium's helpers may still be writing the profile for a moment after it closed.
  if (profile) rmSync(profile, {recursive: true, force: true, maxRetries: 10, retryDelay: 200});
});

test('the products page lists every product and its boards', async () => {
  await open('#/', '#products [data-product]');
  const {products} = await api('/v1/products');
  const shown = await page.$$eval('#products [data-product]', (cards) => cards.map((card) => ({
    product: card.dataset.product,
    title: card.querySelector('h2').textContent,
    boards: [...card.querySelectorAll('[data-board]')].map((a) => a.dataset.board),
  })));
  assert.deepEqual(shown.map((c) => c.product), products);
  for (const card of shown) {
    assert.equal(card.title, card.product);
    const {boards} = await api(`/v1/products/${seg(card.product)}/boards`);
    assert.deepEqual(card.boards, boards.map((b) => b.name), card.product);
  }
  assert.ok(shown.some((c) => c.product === PRODUCT));
  await shot('products');
});

test('a board pages forwards and backwards with the cursors', async () => {
  await open(`#/products/${PRODUCT}/boards/wins?limit=5`, '#ranks tbody tr');
  const first = await assertRanksMatch('wins/entries?limit=5', 'page 1');
  assert.ok(first.total > 10, `too few players for paging: ${first.total}`);
  assert.equal(await page.isDisabled('#prev'), true);
  await shot('board-wins');

  let hash = await page.evaluate(() => location.hash);
  await page.click('#next');
  await afterNavigation(hash, '#ranks tbody tr');
  const second = await assertRanksMatch(`wins/entries?limit=5&after=${seg(first.next)}`, 'page 2');
  hash = await page.evaluate(() => location.hash);
  await page.click('#next');
  await afterNavigation(hash, '#ranks tbody tr');
  const third = await assertRanksMatch(`wins/entries?limit=5&after=${seg(second.next)}`, 'page 3');
  hash = await page.evaluate(() => location.hash);
  await page.click('#prev');
  await afterNavigation(hash, '#ranks tbody tr');
  const back = await assertRanksMatch(`wins/entries?limit=5&before=${seg(third.prev)}`, 'back to page 2');
  assert.deepEqual(back.entries, second.entries, 'paging back shows page 2 again');
  hash = await page.evaluate(() => location.hash);
  await page.click('#prev');
  await afterNavigation(hash, '#ranks tbody tr');
  const again = await shownRanks();
  assert.deepEqual(again.map((r) => r.user_id), first.entries.map((e) => e.user_id), 'back to page 1');
});

test('the ranking and window selectors choose what the API answers', async () => {
  await open(`#/products/${PRODUCT}/boards/wins?limit=5`, '#ranks tbody tr');
  let hash = await page.evaluate(() => location.hash);
  await page.selectOption('#ranking', 'dense');
  await afterNavigation(hash, '#ranks tbody tr');
  await assertRanksMatch('wins/entries?limit=5&ranking=dense', 'dense');

  hash = await page.evaluate(() => location.hash);
  await page.selectOption('#window', 'daily');
  await afterNavigation(hash, '#ranks tbody tr');
  const daily = await assertRanksMatch('wins/entries?limit=5&ranking=dense&window=daily', 'daily');
  assert.equal(await page.inputValue('#period'), daily.period);
  assert.match(await page.textContent('#view-label'), new RegExp(`daily · ${daily.period}`));
  await shot('board-wins-daily');

  await open(`#/products/${PRODUCT}/boards/elo`, '#ranks tbody tr');
  await assertRanksMatch('elo/entries?limit=20', 'elo');
  await shot('board-elo');
});

test('ids are shown as text, never as markup', async () => {
  assert.ok(ODD_PLAYER.includes('<'), 'ODD_PLAYER must hold markup');
  await open(`#/products/${PRODUCT}/boards/wins?limit=100`, '#ranks tbody tr');
  const cell = await page.$$eval('#ranks tbody tr', (rows, id) => {
    const row = rows.find((r) => r.dataset.user === id);
    return row && {text: row.cells[1].textContent, elements: row.cells[1].querySelectorAll('*').length};
  }, ODD_PLAYER);
  assert.ok(cell, 'the odd player is on the board');
  assert.deepEqual(cell, {text: ODD_PLAYER, elements: 1}, 'only the link element, its text verbatim');
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.$('#ranks img'), null);
});

test('a player shows stats, standings and a rating chart', async () => {
  await open(`#/products/${PRODUCT}/boards/wins?limit=5`, '#ranks tbody tr');
  const top = (await shownRanks())[0].user_id;
  const hash = await page.evaluate(() => location.hash);
  await page.click('#ranks tbody tr:first-child td.player a');
  await afterNavigation(hash, '#player');
  assert.equal(await page.textContent('#player'), top);

  const {stats} = await api(`/v1/products/${PRODUCT}/players/${seg(top)}/stats`);
  const shownStats = await page.$$eval('#stats [data-stat]', (items) =>
    Object.fromEntries(items.map((item) => [item.dataset.stat, Number(item.dataset.value)])));
  assert.deepEqual(shownStats, stats);
  assert.ok(stats.wins > 0);

  const {boards} = await api(`/v1/products/${PRODUCT}/boards`);
  for (const board of boards) {
    const standing = await api(`/v1/products/${PRODUCT}/boards/${board.name}/players/${seg(top)}`);
    const row = await page.$eval(`#standings tr[data-board="${board.name}"]`, (tr) => ({
      rank: Number(tr.dataset.rank), score: Number(tr.dataset.score),
    }));
    assert.deepEqual(row, {rank: standing.rank, score: standing.score}, board.name);
  }

  const {entries} = await api(`/v1/products/${PRODUCT}/boards/elo/players/${seg(top)}/history`);
  assert.ok(entries.length > 0);
  const d = await page.getAttribute('section.rating-card[data-board="elo"] svg.chart path.line', 'd');
  assert.ok(d, 'the rating chart has a line');
  assert.equal((d.match(/L/g) || []).length, entries.length, 'one segment per rated match');
  assert.equal(await page.locator('section.rating-card[data-board="elo"] svg.chart circle').count(), entries.length + 1);
  await shot('player');

  // The odd player's page too: its id is a path segment full of reserved characters.
  await open(`#/products/${PRODUCT}/players/${seg(ODD_PLAYER)}`, '#player');
  assert.equal(await page.textContent('#player'), ODD_PLAYER);
  assert.ok(await page.$('#stats [data-stat="games"]'));
  await shot('player-odd-id');
});

test('worker health shows lag 0, the lease and the dead letters by type and by reason', async () => {
  await open('#/worker', '#lag');
  const health = await api('/v1/health/worker');
  assert.equal(await page.textContent('#lag .value'), '0');
  assert.equal(await page.textContent('#lease .value'), 'held');
  // scripts/test-dashboard fed four bad events and a team match the Elo board cannot rate.
  assert.equal(await page.textContent('#dead .value'), '4');
  assert.equal(await page.textContent('#dead .value'), formatNumber(health.events_by_outcome.dead_lettered));
  assert.equal(await page.textContent('#events .value'), formatNumber(health.events_total));
  const cells = (selector) => page.$$eval(`${selector} tbody tr`, (rows) => rows.map((r) => [...r.cells].map((c) => c.textContent)));
  const dead = await cells('#dead-letters');
  assert.deepEqual(dead, health.dead_letters.map((d) => [d.product, d.type, formatNumber(d.count)]));
  assert.deepEqual(dead, [[PRODUCT, 'game_over', '3'], [PRODUCT, 'other', '1']]);
  // By reason: letters, so the team match's letter for the Elo board counts too.
  const reasons = await page.$$eval('#dead-reasons tbody tr', (rows) => rows.map((r) => r.dataset.reason));
  assert.deepEqual(reasons, health.dead_letters_by_reason.map((d) => d.reason));
  assert.deepEqual(await cells('#dead-reasons'),
    health.dead_letters_by_reason.map((d) => [d.reason.replaceAll('_', ' '), formatNumber(d.count)]));
  assert.deepEqual(
    Object.fromEntries(health.dead_letters_by_reason.map((d) => [d.reason, d.count])),
    {missing_field: 2, self_match: 1, unknown_type: 1, unratable_outcome: 1},
  );
  assert.equal(reasons[0], 'missing_field', 'most first');
  // The second sample gives a rate.
  await page.waitForFunction(() => document.querySelector('#rate .value')?.textContent !== '…', null, {timeout: 15_000});
  await shot('worker');
});

test('dark and narrow screens, and unknown pages', async () => {
  await page.emulateMedia({colorScheme: 'dark'});
  await open(`#/products/${PRODUCT}/boards/wins?limit=10`, '#ranks tbody tr');
  const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.notEqual(background, 'rgb(245, 247, 250)', 'dark mode changes the background');
  await shot('board-wins-dark');
  const top = (await shownRanks())[0].user_id;
  await open(`#/products/${PRODUCT}/players/${seg(top)}`, 'svg.chart');
  await shot('player-dark');
  await page.setViewportSize({width: 390, height: 844});
  await open(`#/products/${PRODUCT}/boards/wins?limit=10`, '#ranks tbody tr');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is wider than a phone by ${overflow}px`);
  await shot('board-wins-phone');
  await page.emulateMedia({colorScheme: 'light'});
  await page.setViewportSize({width: 1200, height: 800});

  await open('#/no/such/page', 'h1');
  assert.equal(await page.textContent('h1'), 'Not found');
  await open(`#/products/${PRODUCT}/boards/no-such-board`, '.error');
  assert.match(await page.textContent('.error'), /board_not_found/);
  problems.splice(0, problems.length, ...problems.filter((p) => !/404/.test(p)));
});

test('nothing went wrong in the page', () => {
  assert.deepEqual(problems, []);
});
