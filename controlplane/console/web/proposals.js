import { rpc } from './api.js';
import { h, table, when, errorText, fmtDuration, enumName } from './dom.js';
import { every } from './fleet.js';
import { impactView } from './policy.js';

// changesView is a proposal's diff against the head it was made on.
function changesView(changes) {
  if (!(changes || []).length) return h('p', { class: 'muted' }, 'Same content as its base revision.');
  return table(['field', 'base', 'proposed'], changes.map((c) => h('tr', { class: 'changed', dataset: { field: c.field } },
    h('td', {}, c.field), h('td', {}, c.old_value || '∅'), h('td', {}, c.new_value || '∅'))));
}

// approveBlock is why the viewer of the page may not approve p, or ''.
// The control plane refuses all of these anyway; the page says why first.
function approveBlock(p, ctx) {
  if (!ctx.admin) return 'admins only';
  if (p.proposer === ctx.me.name) return 'you proposed it: another admin approves';
  if (p.stale) return `stale: the head moved past revision ${p.base_revision}; re-propose`;
  return '';
}

export function proposalsPage(el, ctx) {
  const dis = !ctx.admin;
  const poolFilter = h('input', { type: 'text', id: 'proposals-pool', size: 12, placeholder: 'every pool' });
  const out = h('div', { id: 'proposals' });
  const decided = h('div', { id: 'proposals-decided' });
  const msg = h('p', { id: 'proposal-msg' });
  const note = h('input', { type: 'text', id: 'decision-message', size: 40, disabled: dis, placeholder: 'message (required to reject)' });
  el.append(h('h1', {}, 'Proposals'),
    h('div', { class: 'filters' }, h('label', {}, 'pool', poolFilter), h('label', {}, 'decision message', note)), msg,
    h('h2', {}, 'Open'), out, h('h2', {}, 'Decided'), decided);
  let last = '';

  async function decide(method, p) {
    msg.textContent = '';
    try {
      const r = await rpc('PolicyService/' + method, { id: p.id, message: note.value.trim() });
      msg.replaceChildren(method === 'ApproveProposal'
        ? `Approved proposal ${p.id}: revision ${r.revision ? r.revision.revision : '?'} of pool ${p.pool}${p.canary ? ` (a canary on ${p.canary}: see Rollout)` : ''}.`
        : `Rejected proposal ${p.id}.`);
      msg.className = 'ok';
      msg.dataset.decided = p.id;
      note.value = '';
    } catch (e) {
      if (e.status === 401) return ctx.onAuthLost();
      msg.textContent = errorText(e);
      msg.className = 'error';
    }
    last = '';
    await refresh();
  }

  function openCard(p) {
    const block = approveBlock(p, ctx);
    return h('div', { class: 'proposal' + (p.stale ? ' stale' : ''), dataset: { proposal: p.id } },
      h('h3', {}, `#${p.id} · pool ${p.pool} · on revision ${p.base_revision} · by ${p.proposer} · ${when(p.create_time)}`,
        p.stale ? h('span', { class: 'badge warn stale-mark' }, ' stale ') : null),
      h('p', {}, p.message),
      p.canary ? h('p', { class: 'canary' }, `Applied as a canary on ${p.canary}, bake ${fmtDuration(p.bake)}` +
        (p.canary_min_samples ? `, min samples ${p.canary_min_samples}` : '') + (Number(p.canary_max_ratio) ? `, max ratio ${p.canary_max_ratio}` : '') + '.') : null,
      changesView(p.changes),
      impactView(p.impact, 'impact-' + p.id),
      h('div', { class: 'actions' },
        h('button', { type: 'button', class: 'approve', disabled: !!block, title: block, onclick: () => decide('ApproveProposal', p) }, 'Approve'),
        block ? h('span', { class: 'muted approve-reason' }, block) : null,
        h('button', { type: 'button', class: 'reject', disabled: dis, title: dis ? 'admins only' : '', onclick: () => decide('RejectProposal', p) }, 'Reject')));
  }

  function decidedRow(p) {
    const state = enumName(p.state, 'PROPOSAL_STATE_').toLowerCase();
    return h('tr', { dataset: { proposal: p.id } },
      h('td', {}, p.id), h('td', {}, p.pool), h('td', {}, p.proposer), h('td', {}, p.message),
      h('td', { class: 'state ' + (state === 'approved' ? 'ok' : 'error') }, state),
      h('td', { class: 'decided-by' }, p.decided_by), h('td', {}, when(p.decide_time)), h('td', {}, p.decision_message),
      h('td', {}, Number(p.revision) ? `revision ${p.revision}` : '—'));
  }

  async function refresh() {
    try {
      const r = await rpc('PolicyService/ListProposals', { pool: poolFilter.value.trim(), limit: 100 });
      // Unchanged data is not drawn again: a button being clicked stays.
      const key = JSON.stringify(r.proposals);
      if (key === last) return;
      last = key;
      const open = r.proposals.filter((p) => p.state === 'PROPOSAL_STATE_OPEN');
      const done = r.proposals.filter((p) => p.state !== 'PROPOSAL_STATE_OPEN');
      out.replaceChildren(...(open.length ? open.map(openCard) : [h('p', { class: 'muted' }, 'No open proposals.')]));
      decided.replaceChildren(done.length
        ? table(['id', 'pool', 'proposer', 'message', 'decision', 'by', 'when', 'decision message', 'applied as'], done.map(decidedRow))
        : h('p', { class: 'muted' }, 'None decided yet.'));
    } catch (e) {
      if (e.status === 401) throw e;
      last = '';
      out.replaceChildren(h('p', { class: e.unavailable ? 'unavailable' : 'error', id: 'proposals-unavailable' }, 'Proposals: ' + errorText(e)));
    }
  }

  poolFilter.addEventListener('change', () => { last = ''; refresh(); });
  return every(5000, refresh, ctx);
}
