// Segments: each with its rules in words, its members and when they were computed; marketing and
// admins define, edit and delete them. Membership is computed by the batch job (`loyalty admin
// segments recompute`), not by the server, so a new or edited segment has no members until its
// next run; the API has no recompute to offer here. Deleting a segment a running offer targets is
// refused (409 segment_in_use), in place.
import { api } from './api.js';
import { day, errorBox, h, replace, showError, table, when } from './dom.js';

const EXAMPLE = '{"recency": {"min": 4, "max": 5}, "tiers": ["gold"], "preferences": {"coffee": "yes"}}';

export function segmentsPage(page, ctx) {
  const mayManage = ['marketing', 'admin'].includes(ctx.session.role);
  const error = errorBox('segments-error');
  const list = h('div', { 'data-testid': 'segments-list' });
  const form = mayManage ? segmentForm(load) : null;

  async function load() {
    showError(error, null);
    try {
      const segments = await api('GET', '/v1/admin/segments');
      replace(list, segments.length ? table(columns(mayManage, form, error, load), segments, { 'data-testid': 'segments-table' })
        : h('p', {}, 'No segments.'));
    } catch (e) {
      showError(error, e);
    }
  }

  replace(page,
    h('section', { class: 'card' }, h('h1', {}, 'Segments'),
      h('p', { class: 'muted' }, 'Members are counted at the last recompute (the nightly ',
        h('code', {}, 'loyalty admin segments recompute'), '); a new or edited segment has none until then.'),
      error, list),
    form ? form.element : null);
  load();
}

function columns(mayManage, form, error, reload) {
  const cols = [
    { title: 'Id', cell: (s) => h('span', { 'data-testid': 'segment-id' }, s.id) },
    { title: 'Name', cell: (s) => s.name },
    { title: 'Rules', cell: (s) => summary(s.rules || {}) },
    { title: 'Members', cell: (s) => h('span', { 'data-testid': 'segment-members' }, String(s.members)) },
    { title: 'Computed', cell: (s) => (s.computed_at_ms ? when(s.computed_at_ms) : 'not yet') },
  ];
  if (!mayManage) return cols;
  cols.push({
    title: '',
    cell: (s) => h('div', { class: 'row' },
      h('button', { type: 'button', 'data-testid': 'segment-edit', onclick: () => form.edit(s) }, 'Edit'),
      h('button', {
        type: 'button', 'data-testid': 'segment-delete',
        onclick: async () => {
          if (!window.confirm('Delete the segment ' + s.id + ' and its membership?')) return;
          showError(error, null);
          try {
            await api('DELETE', '/v1/admin/segments/' + encodeURIComponent(s.id));
            reload();
          } catch (e) {
            showError(error, e);
          }
        },
      }, 'Delete')),
  });
  return cols;
}

/** The rules in words: "recency 4-5; tiers gold, silver; coffee = yes". No conditions: everyone. */
export function summary(rules) {
  const parts = [];
  for (const score of ['recency', 'frequency', 'monetary']) {
    const r = rules[score];
    if (r) parts.push(score + ' ' + (r.min ?? 0) + '-' + (r.max ?? 5));
  }
  if (rules.tiers && rules.tiers.length) parts.push('tiers ' + rules.tiers.join(', '));
  if (rules.enrolled_from_ms) parts.push('enrolled from ' + day(rules.enrolled_from_ms));
  if (rules.enrolled_until_ms) parts.push('enrolled before ' + day(rules.enrolled_until_ms));
  for (const [k, v] of Object.entries(rules.preferences || {})) parts.push(k + ' = ' + v);
  return parts.length ? parts.join('; ') : 'every member';
}

// One form for both: a definition (POST) or, after Edit, the segment's new name and rules (PUT).
function segmentForm(saved) {
  const id = h('input', { name: 'id', placeholder: 'id (optional)', maxlength: 64, 'data-testid': 'segment-id-input' });
  const name = h('input', { name: 'name', placeholder: 'Name', required: true, maxlength: 128, 'data-testid': 'segment-name' });
  const rules = h('textarea', { name: 'rules', rows: 4, class: 'code', spellcheck: 'false', placeholder: EXAMPLE, 'data-testid': 'segment-rules' });
  const heading = h('h2', {}, 'Define a segment');
  const submit = h('button', { type: 'submit', 'data-testid': 'segment-submit' }, 'Define');
  const cancel = h('button', { type: 'button', hidden: true, onclick: () => reset() }, 'Cancel');
  const error = errorBox('segment-form-error');
  let editing = null;
  const element = h('form', { class: 'card', 'data-testid': 'segment-form' },
    heading, h('div', { class: 'row' }, id, name),
    h('p', { class: 'muted' }, 'Rules as JSON; every condition given must hold, and none means every member.'),
    rules, h('div', { class: 'row' }, submit, cancel), error);

  function reset() {
    editing = null;
    id.disabled = false;
    id.value = name.value = rules.value = '';
    heading.textContent = 'Define a segment';
    submit.textContent = 'Define';
    cancel.hidden = true;
    showError(error, null);
  }

  element.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    let parsed = {};
    try {
      if (rules.value.trim()) parsed = JSON.parse(rules.value);
    } catch (e) {
      showError(error, new Error('The rules are not JSON: ' + e.message));
      return;
    }
    try {
      if (editing) {
        await api('PUT', '/v1/admin/segments/' + encodeURIComponent(editing), { name: name.value, rules: parsed });
      } else {
        const body = { name: name.value, rules: parsed };
        if (id.value.trim()) body.id = id.value.trim();
        await api('POST', '/v1/admin/segments', body);
      }
      reset();
      saved();
    } catch (e) {
      showError(error, e);
    }
  });

  return {
    element,
    edit(s) {
      editing = s.id;
      id.value = s.id;
      id.disabled = true;
      name.value = s.name;
      rules.value = JSON.stringify(s.rules || {}, null, 1);
      heading.textContent = 'Edit ' + s.id + ' (its members are counted again at the next recompute)';
      submit.textContent = 'Save';
      cancel.hidden = false;
      element.scrollIntoView();
    },
  };
}
