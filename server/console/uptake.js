// One offer's uptake by segment (#/offers/<offer id>/uptake): the offer's own figures, and for
// every segment its members and how many the offer reached, who clipped it, who used it (also as
// a share of the segment) and how often, with the CSV.
import { api } from './api.js';
import { csvLink, errorBox, h, percent, replace, showError, table } from './dom.js';

export async function uptakePage(page, _ctx, offerId) {
  const error = errorBox('uptake-error');
  replace(page, h('h1', {}, 'Uptake of ' + offerId), error);
  const path = '/v1/admin/offers/' + encodeURIComponent(offerId) + '/uptake';
  let uptake;
  try {
    uptake = await api('GET', path);
  } catch (e) {
    showError(error, e);
    return;
  }
  const f = uptake.figures;
  replace(page,
    h('section', { class: 'card' },
      h('h1', {}, 'Uptake of ' + uptake.offer_id),
      h('p', { 'data-testid': 'uptake-figures' },
        'Reached ' + f.reach + ', activated ' + f.activated + ', used by ' + f.used_by + ' (' + f.uses + ' uses).'),
      h('p', { class: 'muted' }, 'Every segment, whatever the offer was published to; a member in several segments counts in each.'),
      table([
        { title: 'Segment', cell: (s) => s.name + ' (' + s.segment_id + ')' },
        { title: 'Members', cell: (s) => h('span', { 'data-testid': 'uptake-members' }, String(s.members)) },
        { title: 'Reached', cell: (s) => h('span', { 'data-testid': 'uptake-reached' }, String(s.reached)) },
        { title: 'Activated', cell: (s) => String(s.activated) },
        { title: 'Used by', cell: (s) => String(s.used_by) },
        { title: 'Used by / members', cell: (s) => (s.members > 0 ? percent(s.used_by / s.members) : '–') },
        { title: 'Uses', cell: (s) => String(s.uses) },
      ], uptake.segments, { 'data-testid': 'uptake-table' }),
      csvLink(path + '?format=csv', 'uptake.csv', 'uptake-csv'),
      h('p', {}, h('a', { href: '#/offers' }, 'Back to the offers'))));
}
