import { rpc } from './api.js';
import { h, table, when, className, errorText, fmtDuration, enumName } from './dom.js';

// The pool's latest canary rollout, live: GetRollout every few seconds
// while the page is open, the time left counted down in between.
export function rolloutPage(el, ctx) {
  const poolSel = h('select', { id: 'rollout-pool' });
  const out = h('div', { id: 'rollout' });
  const msg = h('p', { id: 'rollout-msg' });
  const dis = !ctx.admin;
  const note = h('input', { type: 'text', id: 'rollout-message', size: 40, disabled: dis, placeholder: 'why (recorded as the outcome\'s reason)' });
  // The decision controls stay put across refreshes, so that a message
  // being typed keeps its focus; they act on the rollout shown last.
  let cur = null;
  const promoteBtn = h('button', { type: 'button', id: 'promote', disabled: dis, title: dis ? 'admins only' : '', onclick: () => act('PromoteRollout', cur) }, 'Promote to every node');
  const abortBtn = h('button', { type: 'button', id: 'abort', disabled: dis, title: dis ? 'admins only' : '', onclick: () => act('AbortRollout', cur) }, 'Abort (roll the canary back)');
  const actions = h('div', { class: 'actions', id: 'rollout-actions', hidden: true }, h('label', {}, 'message ', note), promoteBtn, abortBtn);
  el.append(h('h1', {}, 'Rollout'), h('div', { class: 'filters' }, h('label', {}, 'pool', poolSel)), actions, msg, out);
  let timer = null;
  let ticker = null;
  let stopped = false;
  let loaded = false;
  let busy = false;

  async function act(method, r) {
    if (!r) return;
    msg.textContent = '';
    busy = true;
    promoteBtn.disabled = abortBtn.disabled = true;
    try {
      const a = await rpc('PolicyService/' + method, { pool: r.pool, canary_revision: r.canary_revision, message: note.value.trim() });
      msg.textContent = (method === 'PromoteRollout' ? 'Promoted' : 'Aborted') + `: revision ${a.revision.revision} ends canary ${r.canary_revision}.`;
      msg.className = 'ok';
      note.value = '';
    } catch (e) {
      if (e.status === 401) return ctx.onAuthLost();
      msg.textContent = errorText(e);
      msg.className = 'error';
    } finally {
      busy = false;
      promoteBtn.disabled = abortBtn.disabled = dis;
    }
    kick();
  }

  // left is the time the bake still has, counted on the browser's clock.
  function left(end) {
    const ms = new Date(end) - Date.now();
    return ms > 0 ? fmtDuration(Math.ceil(ms / 1000)) : 'bake over; deciding';
  }

  function show(r) {
    const state = enumName(r.state, 'ROLLOUT_STATE_');
    const baking = state === 'BAKING';
    const spec = r.spec || {};
    const timeLeft = h('td', { id: 'rollout-left' }, baking ? left(r.bake_end_time) : '—');
    clearInterval(ticker);
    if (baking) ticker = setInterval(() => { timeLeft.textContent = left(r.bake_end_time); }, 1000);
    const outcome = r.outcome;
    // Worse classes first: they are what would roll the canary back.
    const classes = [...(r.classes || [])].sort((a, b) => Number(b.worse) - Number(a.worse));
    cur = r;
    actions.hidden = !baking;
    // replaceChildren takes nodes only: the parts not shown are dropped.
    out.replaceChildren(...[
      table(['canary revision', 'state', 'selector', 'bake', 'time left', 'base revision', 'started', 'bake ends', 'ended by'], [h('tr', {},
        h('td', { id: 'rollout-canary' }, r.canary_revision),
        h('td', { id: 'rollout-state', dataset: { state }, class: baking ? 'warn' : state === 'PROMOTED' ? 'ok' : 'error' }, h('span', { class: 'badge' }, state)),
        h('td', { id: 'rollout-selector' }, spec.selector),
        h('td', {}, fmtDuration(spec.bake)),
        timeLeft,
        h('td', {}, spec.base_revision),
        h('td', {}, when(r.start_time)),
        h('td', {}, when(r.bake_end_time)),
        h('td', {}, Number(r.ending_revision) ? `revision ${r.ending_revision}` : '—'))]),
      h('p', { class: 'muted' }, `A class counts against the canary once canary nodes saw ${spec.min_samples || 0} events of it, and is worse when its rate per canary node exceeds ${Number(spec.max_ratio || 0)}× its rate elsewhere.`),
      outcome ? h('p', { id: 'rollout-outcome', class: state === 'PROMOTED' ? 'ok' : 'error' },
        `${state === 'PROMOTED' ? 'Promoted' : 'Rolled back'} ${outcome.automatic ? 'automatically by the control plane' : 'by an admin'}: `,
        h('span', { id: 'rollout-reason' }, outcome.reason)) : null,
      r.degraded ? h('p', { class: 'warn', id: 'rollout-degraded' }, 'Degraded comparison: ' + r.degraded) : null,
      baking ? [
        h('h2', {}, 'Error classes, canary vs the rest'),
        classes.length ? table(['class', 'canary events', 'canary /node/min', 'rest events', 'rest /node/min', ''], classes.map((c) => h('tr', { class: c.worse ? 'error worse' : '', dataset: { class: className(c.class) } },
          h('td', {}, className(c.class)), h('td', {}, c.canary_events), h('td', {}, Number(c.canary_rate).toFixed(2)),
          h('td', {}, c.rest_events), h('td', {}, Number(c.rest_rate).toFixed(2)), h('td', {}, c.worse ? 'worse on canary' : ''))))
          : h('p', { class: 'muted', id: 'rollout-no-classes' }, 'No error events on any node of the pool since the canary was applied.'),
        h('h2', {}, 'Nodes'),
        table(['node', 'canary', 'applied revision', 'connected', 'NACK of the canary'], (r.nodes || []).map((n) => h('tr', { dataset: { rolloutNode: n.node_id } },
          h('td', {}, n.node_id), h('td', { class: 'canary' }, n.canary ? 'canary' : 'rest'),
          h('td', { class: 'applied ' + (Number(n.applied_revision) === Number(n.canary ? r.canary_revision : spec.base_revision) ? 'ok' : 'warn') }, n.applied_revision),
          h('td', { class: n.connected ? 'ok' : 'warn' }, n.connected ? 'yes' : 'no'), h('td', { class: n.nack_error ? 'error' : '' }, n.nack_error || '—'))))] : null,
    ].flat().filter(Boolean));
  }

  async function poll() {
    if (!loaded) {
      const p = await rpc('PolicyService/ListPools');
      poolSel.replaceChildren(...p.pools.map((x) => h('option', { value: x.pool }, x.pool)));
      loaded = true;
    }
    try {
      const pool = poolSel.value || 'default';
      const r = await rpc('PolicyService/GetRollout', { pool });
      // A decision in flight re-renders once it is done; an answer for a
      // pool no longer selected is dropped (the change polled again).
      if (busy || pool !== (poolSel.value || 'default')) return;
      if (r.rollout) show(r.rollout);
      else { cur = null; actions.hidden = true; out.replaceChildren(h('p', { class: 'muted' }, 'No rollout for this pool.')); }
    } catch (e) {
      if (e.status === 401) throw e;
      clearInterval(ticker);
      cur = null;
      actions.hidden = true;
      if (e.status === 404) out.replaceChildren(h('p', { class: 'muted', id: 'rollout-none' }, 'This pool has had no canary rollout lately.'));
      else out.replaceChildren(h('p', { class: e.unavailable ? 'unavailable' : 'error', id: 'rollout-unavailable' }, 'Rollouts: ' + errorText(e)));
    }
  }

  // kick polls now, then every 3 s; one timer at a time.
  async function kick() {
    clearTimeout(timer);
    try {
      await poll();
    } catch (e) {
      if (e && e.status === 401) { stopped = true; ctx.onAuthLost(); return; }
    }
    if (!stopped) { clearTimeout(timer); timer = setTimeout(kick, 3000); }
  }

  poolSel.addEventListener('change', () => { msg.textContent = ''; kick(); });
  kick();
  return { stop() { stopped = true; clearTimeout(timer); clearInterval(ticker); } };
}
