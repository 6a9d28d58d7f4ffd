// The console's shell: who is logged in, the menu their role may use, and the page the URL's
// fragment names (#/members, #/members/<id>, #/requests, #/liability, #/audit, #/programme).
import { api, onSessionLost, setCsrf } from './api.js';
import { h, replace } from './dom.js';
import { loginPage } from './login.js';
import { membersPage } from './members.js';
import { memberPage } from './member.js';
import { requestsPage } from './requests.js';
import { liabilityPage } from './liability.js';
import { auditPage } from './audit.js';
import { programmePage } from './programme.js';

const page = document.getElementById('page');
const menu = document.getElementById('menu');
const who = document.getElementById('who');

/** The pages of the menu, with the roles that may open them (the server refuses the rest). */
const PAGES = [
  { path: 'members', title: 'Members', roles: ['support', 'marketing', 'admin'] },
  { path: 'requests', title: 'Requests', roles: ['support', 'marketing', 'admin'] },
  { path: 'liability', title: 'Liability', roles: ['support', 'marketing', 'admin'] },
  { path: 'programme', title: 'Programme', roles: ['support', 'marketing', 'admin'] },
  { path: 'audit', title: 'Audit log', roles: ['admin'] },
];

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
  replace(menu, PAGES.filter((p) => p.roles.includes(info.role))
    .map((p) => h('a', { href: '#/' + p.path, 'data-testid': 'menu-' + p.path }, p.title)));
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
  const [first, second] = parts;
  if (first === 'members' && second) return memberPage(page, ctx, second);
  if (first === 'requests') return requestsPage(page, ctx);
  if (first === 'liability') return liabilityPage(page, ctx);
  if (first === 'audit' && info.role === 'admin') return auditPage(page, ctx);
  if (first === 'programme') return programmePage(page, ctx);
  return membersPage(page, ctx);
}

start();
