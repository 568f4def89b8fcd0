import { rpc } from './api.js';
import { h, table, when, className, errorText } from './dom.js';
import { every } from './fleet.js';

export function rolloutPage(el, ctx) {
  const poolSel = h('select', { id: 'rollout-pool' });
  const out = h('div', { id: 'rollout' });
  const msg = h('p', { id: 'rollout-msg' });
  el.append(h('h1', {}, 'Rollout'), h('div', { class: 'filters' }, h('label', {}, 'pool', poolSel)), msg, out);
  const dis = !ctx.admin;

  async function act(method, r) {
    msg.textContent = '';
    try {
      const a = await rpc('PolicyService/' + method, { pool: r.pool, canary_revision: r.canary_revision, message: `${method} from the console` });
      msg.textContent = `Done: revision ${a.revision.revision}.`;
      msg.className = 'ok';
    } catch (e) {
      msg.textContent = errorText(e);
      msg.className = 'error';
    }
  }

  function show(r) {
    const baking = r.state === 'ROLLOUT_STATE_BAKING';
    const spec = r.spec || {};
    out.replaceChildren(
      table(['canary revision', 'state', 'selector', 'bake', 'base', 'started', 'bake ends'], [h('tr', {},
        h('td', {}, r.canary_revision), h('td', { id: 'rollout-state' }, r.state.replace('ROLLOUT_STATE_', '').toLowerCase()),
        h('td', {}, spec.selector), h('td', {}, spec.bake), h('td', {}, spec.base_revision), h('td', {}, when(r.start_time)), h('td', {}, when(r.bake_end_time)))]),
      r.outcome ? h('p', {}, `Outcome: ${String(r.outcome.result).replace('ROLLOUT_RESULT_', '').toLowerCase()}${r.outcome.automatic ? ' (automatic)' : ''}: ${r.outcome.reason}`) : null,
      r.degraded ? h('p', { class: 'warn' }, r.degraded) : null,
      baking ? h('div', { class: 'actions' },
        h('button', { type: 'button', id: 'promote', disabled: dis, onclick: () => act('PromoteRollout', r) }, 'Promote to every node'),
        h('button', { type: 'button', id: 'abort', disabled: dis, onclick: () => act('AbortRollout', r) }, 'Abort (roll the canary back)')) : null,
      h('h2', {}, 'Error classes, canary vs the rest'),
      table(['class', 'canary events', 'canary /min', 'rest events', 'rest /min', ''], (r.classes || []).map((c) => h('tr', { class: c.worse ? 'error' : '' },
        h('td', {}, className(c.class)), h('td', {}, c.canary_events), h('td', {}, Number(c.canary_rate).toFixed(2)),
        h('td', {}, c.rest_events), h('td', {}, Number(c.rest_rate).toFixed(2)), h('td', {}, c.worse ? 'worse' : '')))),
      h('h2', {}, 'Nodes'),
      table(['node', 'canary', 'applied', 'connected', 'NACK'], (r.nodes || []).map((n) => h('tr', {},
        h('td', {}, n.node_id), h('td', {}, n.canary ? 'yes' : ''), h('td', {}, n.applied_revision), h('td', {}, n.connected ? 'yes' : 'no'), h('td', {}, n.nack_error)))));
  }

  let loaded = false;
  const poller = every(3000, async () => {
    if (!loaded) {
      const p = await rpc('PolicyService/ListPools');
      poolSel.replaceChildren(...p.pools.map((x) => h('option', { value: x.pool }, x.pool)));
      loaded = true;
    }
    try {
      const r = await rpc('PolicyService/GetRollout', { pool: poolSel.value || 'default' });
      if (r.rollout) show(r.rollout); else out.replaceChildren(h('p', { class: 'muted' }, 'No rollout for this pool.'));
    } catch (e) {
      if (e.status === 401) throw e;
      if (e.status === 404) out.replaceChildren(h('p', { class: 'muted' }, 'This pool never had a canary rollout.'));
      else out.replaceChildren(h('p', { class: e.unavailable ? 'unavailable' : 'error', id: 'rollout-unavailable' }, 'Rollouts: ' + errorText(e)));
    }
  }, ctx);
  return poller;
}
