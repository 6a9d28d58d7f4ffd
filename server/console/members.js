// Member search (card number, e-mail, phone, the retailer's reference) and the list of members,
// filtered by tier and status, a page at a time.
import { api, query } from './api.js';
import { errorBox, h, replace, showError, table, when } from './dom.js';

const PAGE = 25;

export function membersPage(page) {
  const by = h('select', { name: 'by', 'data-testid': 'search-by' },
    h('option', { value: 'card_number' }, 'Card number'),
    h('option', { value: 'email' }, 'E-mail'),
    h('option', { value: 'phone' }, 'Phone'),
    h('option', { value: 'external_ref' }, 'Reference'));
  const value = h('input', { type: 'search', name: 'q', 'data-testid': 'search-value', placeholder: 'Find a member' });
  const tier = h('input', { type: 'text', name: 'tier', placeholder: 'any tier', 'data-testid': 'filter-tier' });
  const status = h('select', { name: 'status', 'data-testid': 'filter-status' },
    h('option', { value: '' }, 'any status'),
    h('option', { value: 'active' }, 'active'),
    h('option', { value: 'blocked' }, 'blocked'));
  const error = errorBox('members-error');
  const results = h('div', { 'data-testid': 'members-results' });
  const pages = [];

  async function load(after) {
    showError(error, null);
    const search = value.value.trim();
    const params = search
      ? { [by.value]: search }
      : { tier: tier.value.trim(), status: status.value, after, limit: PAGE };
    try {
      const found = await api('GET', '/v1/admin/members' + query(params));
      draw(found, !search, after);
    } catch (e) {
      showError(error, e);
      replace(results);
    }
  }

  function draw(found, listing, after) {
    const columns = [
      { title: 'Card number', cell: (m) => h('a', { href: '#/members/' + encodeURIComponent(m.member_id), 'data-testid': 'member-link' }, m.card_number) },
      { title: 'Reference', cell: (m) => m.external_ref || '' },
      { title: 'Tier', cell: (m) => m.tier },
      { title: 'Balance', cell: (m) => String(m.balance) },
      { title: 'Status', cell: (m) => (m.blocked ? 'blocked' : 'active') },
      { title: 'Enrolled', cell: (m) => when(m.enrolled_at_ms) },
    ];
    const nav = [];
    if (listing && after) {
      nav.push(h('button', { type: 'button', onclick: () => load(pages.pop()) }, 'Previous page'));
    }
    if (listing && found.length === PAGE) {
      nav.push(h('button', {
        type: 'button', 'data-testid': 'next-page',
        onclick: () => { pages.push(after); load(found[found.length - 1].member_id); },
      }, 'Next page'));
    }
    replace(results,
      found.length ? table(columns, found, { 'data-testid': 'members-table' }) : h('p', {}, 'No members found.'),
      h('div', { class: 'paging' }, nav));
  }

  const form = h('form', { class: 'card', 'data-testid': 'search-form' },
    h('h1', {}, 'Members'),
    h('div', { class: 'row' }, by, value, h('button', { type: 'submit', 'data-testid': 'search-submit' }, 'Search')),
    h('div', { class: 'row' }, h('span', {}, 'List with no search:'), tier, status),
    error);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    pages.length = 0;
    load();
  });
  replace(page, form, results);
  load();
}
