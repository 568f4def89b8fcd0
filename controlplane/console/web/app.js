import * as api from './api.js';
import { h } from './dom.js';
import { fleetPage } from './fleet.js';
import { policyPage } from './policy.js';
import { errorsPage } from './errors.js';
import { rolloutPage } from './rollout.js';
import { proposalsPage } from './proposals.js';

const pages = { fleet: fleetPage, policy: policyPage, errors: errorsPage, rollout: rolloutPage, proposals: proposalsPage };
let me = null;
let current = null; // { stop() } of the page shown

function showLogin(msg) {
  me = null;
  stopPage();
  document.getElementById('top').hidden = true;
  document.querySelectorAll('.page').forEach((p) => { p.hidden = true; p.replaceChildren(); });
  document.getElementById('login').hidden = false;
  document.getElementById('login-error').textContent = msg || '';
}

function stopPage() {
  if (current && current.stop) current.stop();
  current = null;
}

function route() {
  if (!me) return;
  const name = (location.hash || '#fleet').slice(1);
  const page = pages[name] ? name : 'fleet';
  stopPage();
  document.querySelectorAll('.page').forEach((p) => { p.hidden = true; p.replaceChildren(); });
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.page === page));
  const el = document.getElementById('page-' + page);
  el.hidden = false;
  current = pages[page](el, { admin: me.role === 'admin', me, onAuthLost: () => showLogin('Your session ended; log in again.') });
}

function loggedIn(s) {
  me = s;
  document.getElementById('login').hidden = true;
  document.getElementById('top').hidden = false;
  document.getElementById('who').replaceChildren(h('span', {}, s.name + ' '), h('span', { class: 'badge', id: 'role' }, s.role));
  route();
}

document.getElementById('login-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const input = document.getElementById('token');
  try {
    const s = await api.login(input.value);
    input.value = '';
    loggedIn(s);
  } catch (e) {
    document.getElementById('login-error').textContent = e.message;
  }
});

document.getElementById('logout').addEventListener('click', async () => {
  try { await api.logout(); } catch { /* gone already */ }
  showLogin('Logged out.');
});

window.addEventListener('hashchange', route);

api.session().then(loggedIn, () => showLogin(''));
