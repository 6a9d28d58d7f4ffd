// The console's shell: who is logged in, the menu their role may use, and the page the URL's
// fragment names (#/members, #/members/<id>, #/requests, #/offers, #/offers/<id>/uptake,
// #/segments, #/messages, #/liability, #/reports/points, #/reports/members,
// #/reports/deliveries[/<message id>], #/reports/watch, #/reports/segments, #/programme,
// #/operators, #/audit).
import { api, onSessionLost, setCsrf } from './api.js';
import { h, replace } from './dom.js';
import { loginPage } from './login.js';
import { membersPage } from './members.js';
import { memberPage } from './member.js';
import { requestsPage } from './requests.js';
import { liabilityPage } from './liability.js';
import { auditPage } from './audit.js';
import { programmePage } from './programme.js';
import { offersPage } from './offers.js';
import { segmentsPage } from './segments.js';
import { pointsPage } from './points.js';
import { memberStatsPage } from './memberstats.js';
import { deliveriesPage } from './deliveries.js';
import { operatorsPage } from './operators.js';
import { watchPage } from './watch.js';
import { rfmPage } from './rfm.js';
import { uptakePage } from './uptake.js';
import { messagesPage } from './messages.js';

const page = document.getElementById('page');
const menu = document.getElementById('menu');
const who = document.getElementById('who');

const ALL = ['support', 'marketing', 'admin'];
const ADMIN = ['admin'];
const MARKETING = ['marketing', 'admin'];

/** The menu: each page's id, route, title, the roles that may open it (the server refuses the
 * rest) and its group; a group's title precedes its first page. */
const PAGES = [
  { id: 'members', path: 'members', title: 'Members', roles: ALL },
  { id: 'requests', path: 'requests', title: 'Requests', roles: ALL },
  { id: 'offers', path: 'offers', title: 'Offers', roles: ALL },
  { id: 'segments', path: 'segments', title: 'Segments', roles: ALL },
  { id: 'messages', path: 'messages', title: 'Messages', roles: MARKETING },
  { id: 'liability', path: 'liability', title: 'Liability', roles: ALL, group: 'Reports' },
  { id: 'points', path: 'reports/points', title: 'Points', roles: ALL, group: 'Reports' },
  { id: 'memberstats', path: 'reports/members', title: 'Members', roles: ALL, group: 'Reports' },
  { id: 'deliveries', path: 'reports/deliveries', title: 'Deliveries', roles: ALL, group: 'Reports' },
  { id: 'watch', path: 'reports/watch', title: 'Watch list', roles: ALL, group: 'Reports' },
  { id: 'rfm', path: 'reports/segments', title: 'Segments and RFM', roles: ALL, group: 'Reports' },
  { id: 'programme', path: 'programme', title: 'Programme', roles: ALL },
  { id: 'operators', path: 'operators', title: 'Operators', roles: ADMIN },
  { id: 'audit', path: 'audit', title: 'Audit log', roles: ADMIN },
];

/** The page for a route's parts, when the role may open it (otherwise the members page). */
const ROUTES = {
  requests: requestsPage,
  offers: offersPage,
  segments: segmentsPage,
  messages: messagesPage,
  liability: liabilityPage,
  'reports/liability': liabilityPage,
  'reports/points': pointsPage,
  'reports/members': memberStatsPage,
  'reports/deliveries': deliveriesPage,
  'reports/watch': watchPage,
  'reports/segments': rfmPage,
  programme: programmePage,
  operators: operatorsPage,
  audit: auditPage,
};

const session = { current: null };

async function start() {
  try {
    signedIn(await api('GET', '/console/session'));
  } catch {
    signedIn(null);
  }
  window.addEventListener('hashchange', route);
  onSessionLost(() => {
    signedIn(null);
    route();
  });
  route();
}

function signedIn(info) {
  session.current = info;
  setCsrf(info ? info.csrf_token : '');
  drawBar();
}

function drawBar() {
  const info = session.current;
  if (!info) {
    replace(menu);
    replace(who);
    return;
  }
  let group;
  const items = [];
  for (const p of PAGES.filter((x) => x.roles.includes(info.role))) {
    if (p.group && p.group !== group) items.push(h('span', { class: 'menu-group' }, p.group));
    group = p.group;
    items.push(h('a', { href: '#/' + p.path, 'data-testid': 'menu-' + p.id }, p.title));
  }
  replace(menu, items);
  replace(who,
    h('span', { 'data-testid': 'operator' }, info.name),
    ' (', h('span', { 'data-testid': 'role' }, info.role), ') ',
    h('button', { type: 'button', 'data-testid': 'logout', onclick: logout }, 'Log out'));
}

async function logout() {
  try {
    await api('DELETE', '/console/session');
  } finally {
    signedIn(null);
    location.hash = '#/login';
    route();
  }
}

function route() {
  const info = session.current;
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (!info) {
    loginPage(page, (fresh) => {
      signedIn(fresh);
      location.hash = '#/members';
      route();
    });
    return;
  }
  const ctx = { session: info };
  const [first, second, third] = parts;
  if (first === 'members' && second) return memberPage(page, ctx, second);
  if (first === 'offers' && second && third === 'uptake') return uptakePage(page, ctx, second);
  const path = first === 'reports' ? first + '/' + second : first;
  const known = PAGES.find((p) => p.path === path);
  const draw = Object.hasOwn(ROUTES, path) ? ROUTES[path] : null;
  // A report's third part is its subject (#/reports/deliveries/<message id>).
  if (draw && (!known || known.roles.includes(info.role))) return draw(page, ctx, third);
  return membersPage(page, ctx);
}

start();
