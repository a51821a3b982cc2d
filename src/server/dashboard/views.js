// The dashboard's pages. Each view takes the route's parameters and a context
// (`ctx.go(hash)` navigates, `ctx.alive()` says whether the page is still shown,
// `ctx.onLeave(fn)` runs `fn` when it is left) and returns the page's node.

import * as api from './api.js';
import {ratingChart} from './chart.js';
import {h, formatNumber, formatTime, errorBox} from './dom.js';

const RATING_KINDS = new Set(['elo', 'glicko2', 'trueskill', 'weng_lin']);
const RANKINGS = ['standard', 'dense', 'ordinal'];
const PAGE_SIZES = [10, 20, 50, 100];
const WORKER_REFRESH_MS = 5000;

/** Hash of a route: path segments (encoded) and query. */
export function link(segments, query = {}) {
  const path = segments.map((s) => encodeURIComponent(s)).join('/');
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') search.set(name, value);
  }
  const text = search.toString();
  return `#/${path}${text ? `?${text}` : ''}`;
}

const productLink = (product) => link(['products', product]);
const boardLink = (product, board, query) => link(['products', product, 'boards', board], query);
const playerLink = (product, user) => link(['products', product, 'players', user]);

function crumbs(...items) {
  return h('nav', {class: 'crumbs', 'aria-label': 'Breadcrumbs'},
    items.map((item, i) => [
      i > 0 ? h('span', {class: 'sep', 'aria-hidden': 'true'}, '/') : null,
      item.href ? h('a', {href: item.href}, item.text) : h('span', {}, item.text),
    ]));
}

const badge = (text, kind = '') => h('span', {class: `badge ${kind}`}, text);
const isRating = (board) => RATING_KINDS.has(board.kind);

function kindBadge(board) {
  return badge(board.kind, isRating(board) ? 'rating' : '');
}

function playerForm(ctx, product) {
  const input = h('input', {type: 'search', name: 'user', placeholder: 'player id', required: true,
    'aria-label': `Player id in ${product}`, autocomplete: 'off'});
  return h('form', {class: 'inline', on: {submit: (event) => {
    event.preventDefault();
    if (input.value) ctx.go(playerLink(product, input.value));
  }}}, input, h('button', {type: 'submit'}, 'Find player'));
}

// ---------------------------------------------------------------- products

export async function productsView(ctx) {
  const {products} = await api.products();
  const page = h('section', {},
    h('h1', {}, 'Products'),
    products.length === 0
      ? h('p', {class: 'muted'}, 'No products yet: the worker lists a product once it has seen one of its events.')
      : null);
  const grid = h('div', {class: 'cards', id: 'products'});
  page.append(grid);
  const cards = await Promise.all(products.map(async (product) => {
    let body;
    try {
      const {boards} = await api.boards(product);
      body = h('ul', {class: 'boards'}, boards.map((board) =>
        h('li', {}, h('a', {href: boardLink(product, board.name), dataset: {board: board.name}}, board.name), ' ', kindBadge(board))));
    } catch (error) {
      body = errorBox(error);
    }
    return h('article', {class: 'card', dataset: {product}},
      h('h2', {}, h('a', {href: productLink(product)}, product)),
      body,
      playerForm(ctx, product));
  }));
  grid.append(...cards);
  return page;
}

export async function productView(ctx, {product}) {
  const {boards} = await api.boards(product);
  const rows = boards.map((board) => h('tr', {dataset: {board: board.name}},
    h('td', {}, h('a', {href: boardLink(product, board.name)}, board.name)),
    h('td', {}, kindBadge(board)),
    h('td', {}, ['all'].concat((board.windows || []).map((w) => w.window)).join(', ')),
    h('td', {class: 'muted'}, describeSettings(board))));
  return h('section', {},
    crumbs({text: 'Products', href: '#/'}, {text: product}),
    h('h1', {}, product),
    playerForm(ctx, product),
    h('div', {class: 'table-wrap'}, h('table', {id: 'boards'},
      h('thead', {}, h('tr', {}, h('th', {}, 'Board'), h('th', {}, 'Kind'), h('th', {}, 'Windows'), h('th', {}, 'Settings'))),
      h('tbody', {}, rows))));
}

function describeSettings(board) {
  const skip = new Set(['name', 'kind', 'windows']);
  return Object.entries(board)
    .filter(([name, value]) => !skip.has(name) && value !== null && typeof value !== 'object')
    .map(([name, value]) => `${name} ${value}`)
    .join(' · ');
}

// ---------------------------------------------------------------- one board

/** The period `step` periods after `label` (negative: before), or null. */
export function stepPeriod(window, label, step) {
  const day = 86400000;
  if (window === 'daily') {
    const t = Date.parse(`${label}T00:00:00Z`);
    return Number.isNaN(t) ? null : new Date(t + step * day).toISOString().slice(0, 10);
  }
  if (window === 'monthly') {
    const match = /^(\d{4})-(\d{2})$/.exec(label);
    if (!match) return null;
    const date = new Date(Date.UTC(Number(match[1]), Number(match[2]) - 1 + step, 1));
    return date.toISOString().slice(0, 7);
  }
  if (window === 'weekly') {
    const match = /^(\d{4})-W(\d{2})$/.exec(label);
    if (!match) return null;
    const jan4 = Date.UTC(Number(match[1]), 0, 4);
    const week1Monday = jan4 - ((new Date(jan4).getUTCDay() + 6) % 7) * day;
    const monday = week1Monday + (Number(match[2]) - 1 + step) * 7 * day;
    const thursday = new Date(monday + 3 * day);
    const year = thursday.getUTCFullYear();
    const ordinal = Math.floor((thursday - Date.UTC(year, 0, 1)) / day);
    return `${year}-W${String(Math.floor(ordinal / 7) + 1).padStart(2, '0')}`;
  }
  return null;
}

export async function boardView(ctx, {product, board: name, query}) {
  const {boards} = await api.boards(product);
  const board = boards.find((b) => b.name === name);
  if (!board) {
    throw new api.ApiError(404, 'board_not_found', `${product} has no board named ${name}`);
  }
  const windows = ['all'].concat((board.windows || []).map((w) => w.window));
  const view = {
    window: query.get('window') || 'all',
    period: query.get('period') || '',
    ranking: query.get('ranking') || 'standard',
    limit: Number(query.get('limit')) || 20,
  };
  const cursor = {after: query.get('after') || '', before: query.get('before') || ''};
  const page = await api.entries(product, name, {
    window: view.window === 'all' ? '' : view.window,
    period: view.window === 'all' ? '' : view.period,
    ranking: view.ranking,
    limit: view.limit,
    after: cursor.after,
    before: cursor.before,
  });
  // Changing a selector starts again at the top.
  const go = (changes) => ctx.go(boardLink(product, name, {...view, limit: view.limit === 20 ? '' : view.limit,
    ranking: view.ranking === 'standard' ? '' : view.ranking,
    window: view.window === 'all' ? '' : view.window, ...changes}));

  const select = (label, id, options, value, onChange) => h('label', {class: 'field'}, h('span', {}, label),
    h('select', {id, on: {change: (event) => onChange(event.target.value)}},
      options.map((option) => h('option', {value: option, selected: String(option) === String(value)}, String(option)))));

  const controls = h('form', {class: 'controls', on: {submit: (event) => event.preventDefault()}},
    select('Window', 'window', windows, view.window, (window) => go({window: window === 'all' ? '' : window, period: ''})),
    select('Ranking', 'ranking', RANKINGS, view.ranking, (ranking) => go({ranking: ranking === 'standard' ? '' : ranking})),
    select('Rows', 'limit', [...new Set([...PAGE_SIZES, view.limit])].sort((a, b) => a - b), view.limit, (limit) => go({limit: Number(limit) === 20 ? '' : limit})));
  if (view.window !== 'all') {
    const shown = page.period || view.period;
    const input = h('input', {id: 'period', type: 'text', value: shown, size: 10, 'aria-label': 'Period',
      placeholder: {daily: 'YYYY-MM-DD', weekly: 'YYYY-Www', monthly: 'YYYY-MM'}[view.window]});
    const step = (n) => {
      const next = stepPeriod(view.window, shown, n);
      if (next) go({period: next});
    };
    controls.append(h('div', {class: 'field'}, h('span', {}, 'Period'),
      h('div', {class: 'period'},
        h('button', {type: 'button', title: 'Previous period', 'aria-label': 'Previous period', on: {click: () => step(-1)}}, '‹'),
        input,
        h('button', {type: 'button', title: 'Next period', 'aria-label': 'Next period', on: {click: () => step(1)}}, '›'),
        h('button', {type: 'button', on: {click: () => go({period: input.value.trim()})}}, 'Show'),
        h('button', {type: 'button', class: 'link', on: {click: () => go({period: ''})}}, 'current'))));
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        go({period: input.value.trim()});
      }
    });
  }

  const rows = page.entries.map((entry) => h('tr', {class: entry.rank <= 3 ? 'podium' : null, dataset: {user: entry.user_id, rank: entry.rank, score: entry.score}},
    h('td', {class: 'num rank'}, String(entry.rank)),
    h('td', {class: 'player'}, h('a', {href: playerLink(product, entry.user_id)}, entry.user_id)),
    h('td', {class: 'num score'}, formatNumber(entry.score))));
  const first = page.entries[0];
  const last = page.entries[page.entries.length - 1];
  const pageGo = (changes) => ctx.go(boardLink(product, name, {
    window: view.window === 'all' ? '' : view.window,
    period: view.window === 'all' ? '' : page.period,
    ranking: view.ranking === 'standard' ? '' : view.ranking,
    limit: view.limit === 20 ? '' : view.limit,
    ...changes,
  }));
  const pager = h('div', {class: 'pager'},
    h('button', {type: 'button', id: 'prev', disabled: !page.prev, on: {click: () => pageGo({before: page.prev})}}, '← Previous'),
    h('span', {class: 'muted', id: 'page-info'},
      first ? `ranks ${first.rank}–${last.rank} · ${page.total} ${page.total === 1 ? 'player' : 'players'}` : `${page.total} players`),
    h('button', {type: 'button', id: 'next', disabled: !page.next, on: {click: () => pageGo({after: page.next})}}, 'Next →'));

  return h('section', {},
    crumbs({text: 'Products', href: '#/'}, {text: product, href: productLink(product)}, {text: name}),
    h('h1', {}, name, ' ', kindBadge(board)),
    h('p', {class: 'muted', id: 'view-label'},
      page.window === 'all' ? 'All time' : `${page.window} · ${page.period}`, ` · ${page.ranking} ranking`),
    controls,
    page.entries.length === 0
      ? h('p', {class: 'empty'}, 'Nobody on this board yet.')
      : h('div', {class: 'table-wrap'}, h('table', {id: 'ranks', class: 'ranks'},
        h('thead', {}, h('tr', {}, h('th', {class: 'num'}, 'Rank'), h('th', {}, 'Player'), h('th', {class: 'num'}, isRating(board) ? 'Rating' : 'Score'))),
        h('tbody', {}, rows))),
    pager);
}

// ---------------------------------------------------------------- one player

const STAT_ORDER = ['games', 'wins', 'losses', 'draws'];

function statsTable(stats) {
  const names = Object.keys(stats).sort((a, b) => {
    const ia = STAT_ORDER.indexOf(a);
    const ib = STAT_ORDER.indexOf(b);
    if (ia !== ib) return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib);
    return a < b ? -1 : a > b ? 1 : 0;
  });
  if (names.length === 0) return h('p', {class: 'empty'}, 'No stats: this player has not played this game.');
  return h('dl', {class: 'stats', id: 'stats'}, names.map((name) =>
    h('div', {dataset: {stat: name, value: stats[name]}}, h('dt', {}, name.replaceAll('_', ' ')), h('dd', {}, formatNumber(stats[name])))));
}

async function standingRow(product, user, board) {
  try {
    const s = await api.standing(product, board.name, user, {});
    return h('tr', {dataset: {board: board.name, rank: s.rank, score: s.score}},
      h('td', {}, h('a', {href: boardLink(product, board.name)}, board.name)),
      h('td', {}, kindBadge(board)),
      h('td', {class: 'num rank'}, String(s.rank)),
      h('td', {class: 'num'}, formatNumber(s.score)),
      h('td', {class: 'num muted'}, `of ${s.total}`));
  } catch (error) {
    const text = error.code === 'player_not_on_board' ? 'not on this board' : `${error.code}: ${error.message}`;
    return h('tr', {dataset: {board: board.name}},
      h('td', {}, h('a', {href: boardLink(product, board.name)}, board.name)),
      h('td', {}, kindBadge(board)),
      h('td', {class: 'muted', colspan: 3}, text));
  }
}

async function ratingSection(product, user, board) {
  const section = h('section', {class: 'card rating-card', dataset: {board: board.name}},
    h('h3', {}, board.name, ' ', kindBadge(board)));
  let state;
  try {
    state = await api.rating(product, board.name, user);
  } catch (error) {
    section.append(error.code === 'player_not_rated'
      ? h('p', {class: 'empty'}, 'Not rated yet.')
      : errorBox(error));
    return section;
  }
  section.append(h('dl', {class: 'stats'},
    h('div', {}, h('dt', {}, 'rating'), h('dd', {}, formatNumber(state.display))),
    // Elo has no deviation.
    board.kind === 'elo' ? null : h('div', {}, h('dt', {}, 'deviation'), h('dd', {}, formatNumber(state.state.deviation))),
    h('div', {}, h('dt', {}, 'rated matches'), h('dd', {}, formatNumber(state.state.matches))),
    state.provisional ? h('div', {}, h('dt', {}, 'status'), h('dd', {}, 'provisional')) : null));
  try {
    const {entries} = await api.history(product, board.name, user, 100);
    const chart = ratingChart(entries, `${board.name} rating of ${user}`);
    section.append(chart ? h('figure', {class: 'chart-box'}, chart) : h('p', {class: 'empty'}, 'No rated matches kept.'));
    if (entries.length > 0) {
      section.append(h('div', {class: 'table-wrap'}, h('table', {class: 'history'},
        h('caption', {}, 'Latest rated matches'),
        h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Result'), h('th', {class: 'num'}, 'Expected'), h('th', {class: 'num'}, 'Rating'), h('th', {class: 'num'}, 'Change'))),
        h('tbody', {}, entries.slice(0, 10).map((entry) => h('tr', {},
          h('td', {}, formatTime(entry.at_ms)),
          h('td', {}, badge(entry.result, entry.result)),
          h('td', {class: 'num'}, entry.expected === null ? '—' : `${Math.round(entry.expected * 100)}%`),
          h('td', {class: 'num'}, formatNumber(entry.after)),
          h('td', {class: `num ${entry.change >= 0 ? 'up' : 'down'}`}, `${entry.change >= 0 ? '+' : ''}${formatNumber(entry.change)}`)))))));
    }
  } catch (error) {
    section.append(errorBox(error));
  }
  return section;
}

export async function playerView(ctx, {product, user}) {
  const [{stats}, {boards}] = await Promise.all([api.stats(product, user), api.boards(product)]);
  const standings = await Promise.all(boards.map((board) => standingRow(product, user, board)));
  const ratings = await Promise.all(boards.filter(isRating).map((board) => ratingSection(product, user, board)));
  return h('section', {},
    crumbs({text: 'Products', href: '#/'}, {text: product, href: productLink(product)}, {text: 'players'}, {text: user}),
    h('h1', {class: 'player-name', id: 'player'}, user),
    h('div', {class: 'split'},
      h('section', {class: 'card'}, h('h2', {}, 'Stats'), statsTable(stats)),
      h('section', {class: 'card'}, h('h2', {}, 'Boards'),
        h('div', {class: 'table-wrap'}, h('table', {id: 'standings'},
          h('thead', {}, h('tr', {}, h('th', {}, 'Board'), h('th', {}, 'Kind'), h('th', {class: 'num'}, 'Rank'), h('th', {class: 'num'}, 'Score'), h('th', {class: 'num'}, 'Players'))),
          h('tbody', {}, standings))))),
    ratings.length > 0 ? h('h2', {}, 'Ratings') : null,
    ratings);
}

// ---------------------------------------------------------------- worker

function tile(label, value, id, state = '') {
  return h('div', {class: `tile ${state}`, id},
    h('div', {class: 'label'}, label), h('div', {class: 'value'}, value));
}

function workerBody(health, rate) {
  const dead = health.events_by_outcome.dead_lettered || 0;
  const lease = health.lease_held === null ? 'unknown' : health.lease_held ? 'held' : 'standby';
  const lag = health.consumer_lag;
  const outcomes = Object.entries(health.events_by_outcome);
  return [
    h('p', {class: 'muted', id: 'source'},
      'Metrics of ', health.source === 'process' ? 'this process (stats-tracker all)' : health.source,
      ` · read ${formatTime(health.scraped_at_ms)} · refreshed every ${WORKER_REFRESH_MS / 1000} s`),
    health.reporting ? null : h('p', {class: 'error'}, 'No worker metrics: the worker has not started here.'),
    h('div', {class: 'tiles'},
      tile('Lease', lease, 'lease', health.lease_held ? 'good' : health.lease_held === false ? 'warn' : ''),
      tile('Lag (entries)', lag === null ? '—' : formatNumber(lag), 'lag', lag === null ? '' : lag === 0 ? 'good' : 'warn'),
      tile('Pending', health.pending_entries === null ? '—' : formatNumber(health.pending_entries), 'pending'),
      tile('Events/s', rate === null ? '…' : rate.toFixed(1), 'rate'),
      tile('Events handled', formatNumber(health.events_total), 'events'),
      tile('Dead letters', formatNumber(dead), 'dead', dead > 0 ? 'warn' : 'good'),
      tile('Redis errors', formatNumber(health.redis_errors_total), 'redis-errors', health.redis_errors_total > 0 ? 'warn' : ''),
      tile('Lost entries', formatNumber(health.lost_entries_total), 'lost', health.lost_entries_total > 0 ? 'bad' : '')),
    h('div', {class: 'split'},
      h('section', {class: 'card'}, h('h2', {}, 'Events by outcome'),
        outcomes.length === 0 ? h('p', {class: 'empty'}, 'No events yet.')
          : h('table', {id: 'outcomes'}, h('tbody', {}, outcomes.map(([outcome, count]) =>
            h('tr', {dataset: {outcome}}, h('td', {}, outcome.replaceAll('_', ' ')), h('td', {class: 'num'}, formatNumber(count))))))),
      h('section', {class: 'card'}, h('h2', {}, 'Dead letters'),
        health.dead_letters.length === 0 ? h('p', {class: 'empty'}, 'None.')
          : h('table', {id: 'dead-letters'},
            h('thead', {}, h('tr', {}, h('th', {}, 'Product'), h('th', {}, 'Event type'), h('th', {class: 'num'}, 'Count'))),
            h('tbody', {}, health.dead_letters.map((d) => h('tr', {dataset: {product: d.product, type: d.type}},
              h('td', {}, d.product), h('td', {}, d.type), h('td', {class: 'num'}, formatNumber(d.count)))))),
        h('h3', {}, 'By reason'),
        health.dead_letters_by_reason.length === 0 ? h('p', {class: 'empty'}, 'None.')
          : h('table', {id: 'dead-reasons'},
            h('thead', {}, h('tr', {}, h('th', {}, 'Reason'), h('th', {class: 'num'}, 'Letters'))),
            h('tbody', {}, health.dead_letters_by_reason.map((d) => h('tr', {dataset: {reason: d.reason}},
              h('td', {}, d.reason.replaceAll('_', ' ')), h('td', {class: 'num'}, formatNumber(d.count)))))),
        h('p', {class: 'muted small'}, 'Events by type count each dead-lettered event once; reasons count letters, one per board that could not rate an otherwise applied event. Each letter keeps its reason and the original fields in the dead-letter stream (README: Dead letters).'))),
  ];
}

export async function workerView(ctx) {
  const page = h('section', {}, h('h1', {}, 'Worker health'));
  const body = h('div', {id: 'worker'});
  page.append(body);
  let previous = null;
  const refresh = async () => {
    let content;
    try {
      const health = await api.workerHealth();
      let rate = null;
      if (previous && health.scraped_at_ms > previous.scraped_at_ms) {
        rate = Math.max(0, (health.events_total - previous.events_total) * 1000 / (health.scraped_at_ms - previous.scraped_at_ms));
      }
      previous = health;
      content = workerBody(health, rate);
    } catch (error) {
      content = [errorBox(error)];
    }
    if (ctx.alive()) body.replaceChildren(...content.filter(Boolean));
  };
  await refresh();
  const timer = setInterval(refresh, WORKER_REFRESH_MS);
  ctx.onLeave(() => clearInterval(timer));
  return page;
}
