// Sending a message (marketing and admins): channel, kind, subject and body to a segment or listed
// members, asked before it goes; the API's refusal in place, and after the send its summary with a
// link to that message's deliveries report. The kind has no default, as the API has none: a
// service message skips the consent check, so the operator chooses it every time.
import { api, ApiError, freshKey } from './api.js';
import { errorBox, h, replace, showError } from './dom.js';
import { fillSegments, memberIds } from './audience.js';

const CHANNELS = [
  ['inapp', 'In-app'],
  ['push', 'Push'],
  ['sms', 'SMS'],
  ['email', 'E-mail'],
];
const KINDS = [
  ['', 'choose a kind'],
  ['marketing', 'Marketing (needs consent on push, SMS, e-mail)'],
  ['service', 'Service (account, points, answers)'],
];
const FIGURES = [
  ['recipients', 'Recipients'],
  ['in_inbox', 'In the inbox'],
  ['sent', 'Sent (in-app)'],
  ['queued', 'Queued'],
  ['handed_over', 'Handed over'],
  ['delivered', 'Delivered (provider receipt)'],
  ['logged', 'Only logged'],
  ['failed', 'Failed'],
  ['refused_no_consent', 'Refused: no consent'],
  ['refused_rate_limited', 'Refused: daily limit'],
];

export function messagesPage(page) {
  const field = (name, attrs = {}) => h('input', { name, 'data-testid': 'message-' + name, ...attrs });
  const select = (name, options) => h('select', { name, 'data-testid': 'message-' + name },
    options.map(([v, t]) => h('option', { value: v }, t)));
  const channel = select('channel', CHANNELS);
  const kind = select('kind', KINDS);
  const id = field('id', { placeholder: 'id (optional)', maxlength: 64 });
  // No `required`: the API's own message says what a subject must be, in place.
  const subject = field('subject', { placeholder: 'Subject', maxlength: 512, size: 40 });
  const body = h('textarea', { name: 'body', 'data-testid': 'message-body', placeholder: 'Body', maxlength: 16384, rows: 6, cols: 60 });
  const audience = select('audience', [['segment', 'Segment'], ['members', 'Members (ids)']]);
  const segment = h('select', { name: 'segment', 'data-testid': 'message-segment' });
  const members = field('members', { placeholder: 'member ids, comma-separated', hidden: true, size: 40 });
  audience.addEventListener('change', () => {
    segment.hidden = audience.value !== 'segment';
    members.hidden = audience.value === 'segment';
  });
  const error = errorBox('message-error');
  const summary = h('div', { 'data-testid': 'message-summary', hidden: true });
  const form = h('form', { class: 'card', 'data-testid': 'message-form' },
    h('h1', {}, 'Send a message'),
    h('div', { class: 'row' }, 'Channel ', channel, 'Kind ', kind, id),
    h('div', { class: 'row' }, subject),
    h('div', { class: 'row' }, body),
    h('div', { class: 'row' }, 'To ', audience, segment, members,
      h('button', { type: 'submit', 'data-testid': 'message-submit' }, 'Send')),
    error);
  replace(page, form, summary);
  fillSegments(segment, error);

  // The id the page made for this text: a retry of the same text (say after a lost answer)
  // reuses it, so the server reaches only recipients it has not reached; another text gets another.
  let madeId = null;
  form.addEventListener('input', () => { madeId = null; });
  form.addEventListener('change', () => { madeId = null; });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    showError(error, null);
    const toSegment = audience.value === 'segment';
    const ids = memberIds(members.value);
    const who = toSegment ? 'segment ' + optionText(segment) : ids.length + ' listed member(s)';
    const text = kind.value || 'unclassified';
    if (!window.confirm('Send "' + subject.value + '" (' + text + ', ' + channel.value + ') to ' + who + '?')) return;
    if (!id.value.trim() && !madeId) madeId = freshKey('msg');
    const message = {
      id: id.value.trim() || madeId,
      channel: channel.value,
      kind: kind.value,
      subject: subject.value,
      body: body.value,
    };
    if (toSegment) message.segment = segment.value;
    else message.members = ids;
    try {
      const answer = await api('POST', '/v1/admin/messages', message);
      showSummary(summary, answer);
      // The next message starts blank, its kind too: chosen afresh every time.
      id.value = subject.value = body.value = kind.value = '';
      madeId = null;
    } catch (e) {
      showError(error, e instanceof ApiError ? e : lostAnswer(e));
    }
  });
}

// No answer at all: the server may have sent it. Saying so keeps the operator from retyping the
// text (a new id) when Send again is the safe retry.
function lostAnswer(e) {
  return new Error('No answer from the server (' + (e.message || e) + '): the message may have gone out. '
    + 'Send again as it is: no one gets it twice.');
}

function optionText(select) {
  const option = select.options[select.selectedIndex];
  return option ? option.textContent : '(none)';
}

function showSummary(box, answer) {
  replace(box, h('section', { class: 'card' },
    h('h2', {}, 'Sent ', h('span', { 'data-testid': 'message-sent-id' }, answer.message_id)),
    h('p', { class: 'muted' }, answer.kind + ' on ' + answer.channel + '; counted over every recipient of this id so far.'),
    h('dl', { class: 'facts' }, FIGURES.flatMap(([key, title]) => [
      h('dt', {}, title),
      h('dd', { 'data-testid': 'message-' + key }, String(answer[key] ?? 0)),
    ])),
    h('p', {}, h('a', {
      href: '#/reports/deliveries/' + encodeURIComponent(answer.message_id),
      'data-testid': 'message-deliveries-link',
    }, 'Deliveries of this message'))));
  box.hidden = false;
}
