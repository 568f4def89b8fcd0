import { rpc } from './api.js';
import { h, table, when, errorText } from './dom.js';
import { every } from './fleet.js';
import { impactView } from './policy.js';

export function proposalsPage(el, ctx) {
  const openOnly = h('input', { type: 'checkbox', id: 'open-only' });
  openOnly.checked = true;
  const out = h('div', { id: 'proposals' });
  const msg = h('p', { id: 'proposal-msg' });
  const note = h('input', { type: 'text', id: 'decision-message', size: 40, placeholder: 'message (required to reject)' });
  el.append(h('h1', {}, 'Proposals'), h('div', { class: 'filters' }, h('label', {}, 'open only', openOnly), h('label', {}, 'decision message', note)), msg, out);
  const dis = !ctx.admin;

  async function decide(method, p) {
    msg.textContent = '';
    try {
      const r = await rpc('PolicyService/' + method, { id: p.id, message: note.value });
      msg.textContent = method === 'ApproveProposal' ? `Approved: revision ${r.revision ? r.revision.revision : '?'}.` : 'Rejected.';
      msg.className = 'ok';
    } catch (e) {
      msg.textContent = errorText(e);
      msg.className = 'error';
    }
  }

  return every(5000, async () => {
    try {
      const r = await rpc('PolicyService/ListProposals', { open_only: openOnly.checked, limit: 100 });
      out.replaceChildren(r.proposals.length ? table(['id', 'pool', 'base', 'proposer', 'when', 'message', 'state', 'changes', ''], r.proposals.map((p) => {
        const open = p.state === 'PROPOSAL_STATE_OPEN';
        return h('tr', { dataset: { proposal: p.id } },
          h('td', {}, p.id), h('td', {}, p.pool), h('td', {}, p.base_revision + (p.stale ? ' (stale: re-propose)' : '')),
          h('td', {}, p.proposer), h('td', {}, when(p.create_time)), h('td', {}, p.message),
          h('td', {}, String(p.state).replace('PROPOSAL_STATE_', '').toLowerCase() + (p.decided_by ? ` by ${p.decided_by}` : '')),
          h('td', {}, h('ul', {}, (p.changes || []).map((c) => h('li', {}, `${c.field}: ${c.old_value || '∅'} → ${c.new_value || '∅'}`))), impactView(p.impact)),
          h('td', {}, open ? [h('button', { type: 'button', class: 'approve', disabled: dis || p.stale, onclick: () => decide('ApproveProposal', p) }, 'Approve'),
            h('button', { type: 'button', class: 'reject', disabled: dis, onclick: () => decide('RejectProposal', p) }, 'Reject')] : null));
      })) : h('p', { class: 'muted' }, 'No proposals.'));
    } catch (e) {
      if (e.status === 401) throw e;
      out.replaceChildren(h('p', { class: e.unavailable ? 'unavailable' : 'error', id: 'proposals-unavailable' }, 'Proposals: ' + errorText(e)));
    }
  }, ctx);
}
