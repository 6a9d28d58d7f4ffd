// Offers as the programme runs them: the list by status, a page at a time, with how each performed
// (reach, activated, used by, uses); End and Withdraw for marketing and admins, and a form that
// publishes an offer to a segment, a tier or listed members. The API's refusals show in place.
import { api, query } from './api.js';
import { dateMs, day, errorBox, h, replace, showError, table } from './dom.js';
import { fillSegments, memberIds } from './audience.js';

const PAGE = 25;
const STATUSES = ['', 'upcoming', 'active', 'ended', 'withdrawn'];
const REWARDS = [
  ['fixed_points', 'Bonus points'],
  ['percent_off', 'Percent off'],
  ['points_multiplier', 'Points multiplier (percent)'],
];

export function offersPage(page, ctx) {
  const mayManage = ['marketing', 'admin'].includes(ctx.session.role);
  const status = h('select', { name: 'status', 'data-testid': 'offers-status' },
    STATUSES.map((s) => h('option', { value: s }, s || 'any status')));
  const error = errorBox('offers-error');
  const results = h('div', { 'data-testid': 'offers-results' });
  const pages = [];
  let shownAfter;

  let latest = 0;

  // Only the latest request draws: a filter changed twice quickly must not show the first answer.
  async function load(after) {
    const mine = ++latest;
    showError(error, null);
    shownAfter = after;
    try {
      const found = await api('GET', '/v1/admin/offers' + query({ status: status.value, after, limit: PAGE }));
      if (mine !== latest) return;
      draw(found, after);
    } catch (e) {
      showError(error, e);
      replace(results);
    }
  }

  function draw(found, after) {
    const nav = [];
    if (after !== undefined) nav.push(h('button', { type: 'button', 'data-testid': 'offers-previous', onclick: () => load(pages.pop()) }, 'Previous page'));
    if (found.length === PAGE) {
      nav.push(h('button', {
        type: 'button', 'data-testid': 'offers-next',
        onclick: () => { pages.push(after); load(found[found.length - 1].offer.id); },
      }, 'Next page'));
    }
    replace(results,
      found.length ? table(columns(mayManage, error, () => load(shownAfter)), found, { 'data-testid': 'offers-table' })
        : h('p', {}, 'No offers.'),
      h('div', { class: 'paging' }, nav));
  }

  status.addEventListener('change', () => { pages.length = 0; load(); });
  replace(page,
    h('section', { class: 'card' }, h('h1', {}, 'Offers'), h('div', { class: 'row' }, 'Status ', status), error, results),
    mayManage ? publishForm(() => { pages.length = 0; load(); }) : null);
  load();
}

function columns(mayManage, error, reload) {
  const cols = [
    { title: 'Offer', cell: (r) => h('span', { 'data-testid': 'offer-id' }, r.offer.id) },
    { title: 'Title', cell: (r) => r.offer.title },
    { title: 'For', cell: (r) => r.target_kind + (r.target_key ? ' ' + r.target_key : '') },
    { title: 'Valid', cell: (r) => day(r.offer.valid_from_ms) + ' – ' + day(r.offer.valid_until_ms) },
    { title: 'Status', cell: (r) => h('span', { 'data-testid': 'offer-status' }, r.status) },
    { title: 'Reach', cell: (r) => h('span', { 'data-testid': 'offer-reach' }, String(r.figures.reach)) },
    { title: 'Activated', cell: (r) => String(r.figures.activated) },
    { title: 'Used by', cell: (r) => String(r.figures.used_by) },
    { title: 'Uses', cell: (r) => String(r.figures.uses) },
    {
      title: 'By segment',
      cell: (r) => h('a', { href: '#/offers/' + encodeURIComponent(r.offer.id) + '/uptake', 'data-testid': 'offer-uptake' }, 'Uptake'),
    },
  ];
  if (mayManage) cols.push({ title: '', cell: (r) => actions(r, error, reload) });
  return cols;
}

// End: tills stop applying it now and members see it as ended. Withdraw: it leaves their phones.
function actions(r, error, reload) {
  const id = r.offer.id;
  const act = (verb, question) => async () => {
    if (!window.confirm(question)) return;
    showError(error, null);
    try {
      await api('POST', '/v1/admin/offers/' + encodeURIComponent(id) + '/' + verb);
      reload();
    } catch (e) {
      showError(error, e);
    }
  };
  return h('div', { class: 'row' },
    ['upcoming', 'active'].includes(r.status) ? h('button', {
      type: 'button', 'data-testid': 'offer-end',
      onclick: act('end', 'End ' + id + ' now? Tills stop applying it; members see it as ended.'),
    }, 'End') : null,
    r.status !== 'withdrawn' ? h('button', {
      type: 'button', 'data-testid': 'offer-withdraw',
      onclick: act('withdraw', 'Withdraw ' + id + '? It is taken off members\' phones at their next sync.'),
    }, 'Withdraw') : null);
}

function publishForm(published) {
  const field = (name, attrs = {}) => h('input', { name, 'data-testid': 'publish-' + name, ...attrs });
  const id = field('id', { placeholder: 'id (optional)', maxlength: 64 });
  const title = field('title', { placeholder: 'Title', required: true, maxlength: 4096 });
  const description = field('description', { placeholder: 'Description', maxlength: 4096 });
  const reward = h('select', { name: 'reward', 'data-testid': 'publish-reward' },
    REWARDS.map(([v, t]) => h('option', { value: v }, t)));
  const value = field('value', { type: 'number', step: 1, required: true, placeholder: 'Value' });
  const from = field('from', { type: 'date', required: true });
  const until = field('until', { type: 'date', required: true });
  const activation = field('activation', { type: 'checkbox' });
  const kind = h('select', { name: 'target', 'data-testid': 'publish-target' },
    h('option', { value: 'segment' }, 'Segment'),
    h('option', { value: 'tier' }, 'Tier'),
    h('option', { value: 'members' }, 'Members (ids)'));
  const segment = h('select', { name: 'segment', 'data-testid': 'publish-segment' });
  const key = field('key', { placeholder: 'tier id', hidden: true });
  kind.addEventListener('change', () => {
    segment.hidden = kind.value !== 'segment';
    key.hidden = kind.value === 'segment';
    key.placeholder = kind.value === 'tier' ? 'tier id' : 'member ids, comma-separated';
  });
  const error = errorBox('publish-error');
  const done = h('p', { class: 'ok', 'data-testid': 'publish-done', hidden: true });
  const form = h('form', { class: 'card', 'data-testid': 'publish-form' },
    h('h2', {}, 'Publish an offer'),
    h('div', { class: 'row' }, id, title, description),
    h('div', { class: 'row' }, reward, value,
      h('label', {}, 'From ', from), h('label', {}, 'Until ', until), h('span', { class: 'muted' }, '(UTC)'),
      h('label', {}, activation, ' needs activation')),
    h('div', { class: 'row' }, 'For ', kind, segment, key,
      h('button', { type: 'submit', 'data-testid': 'publish-submit' }, 'Publish')),
    error, done);
  fillSegments(segment, error);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    done.hidden = true;
    const offer = {
      title: title.value,
      description: description.value,
      reward: reward.value,
      value: Number(value.value),
      valid_from_ms: dateMs(from.value),
      valid_until_ms: dateMs(until.value),
      needs_activation: activation.checked,
    };
    if (id.value.trim()) offer.id = id.value.trim();
    try {
      const answer = await api('POST', '/v1/admin/offers', { offer, target: target(kind.value, segment.value, key.value) });
      done.textContent = 'Published ' + answer.offer.id + ' (version ' + answer.version + '): ' + answer.members + ' members reached.';
      done.hidden = false;
      id.value = title.value = description.value = '';
      published();
    } catch (e) {
      showError(error, e);
    }
  });
  return form;
}

function target(kind, segment, key) {
  if (kind === 'segment') return { kind, segment_id: segment };
  if (kind === 'tier') return { kind, tier: key.trim() };
  return { kind, member_ids: memberIds(key) };
}
