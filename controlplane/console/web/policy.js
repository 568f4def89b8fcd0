import { rpc } from './api.js';
import { h, table, when, errorText, parseDuration, fmtDuration } from './dom.js';

// The policy's fields, by group, as the proto names them: the names
// BadRequest field violations use ("limits.max_connections").
const GROUPS = [
  ['origins', 'Origins', [['allow', 'list', 'allowed origins, one per line'], ['allow_missing', 'bool', 'allow clients without Origin']]],
  ['heartbeat', 'Heartbeat', [['interval', 'duration', 'ping interval'], ['timeout', 'duration', 'idle timeout']]],
  ['limits', 'Limits', [['max_connections', 'int'], ['max_connections_per_ip', 'int'], ['handshakes_per_second', 'int'], ['handshake_burst', 'int'],
    ['messages_per_second', 'int'], ['message_burst', 'int'], ['max_message_bytes', 'int']]],
  ['breaker', 'Breaker', [['failure_ratio', 'number'], ['min_samples', 'int'], ['window', 'duration'], ['open_duration', 'duration'], ['half_open_probes', 'int']]],
  ['handshake', 'Handshake', [['reject_with', 'enum', '', ['REJECT_MODE_UNSPECIFIED', 'REJECT_MODE_HTTP', 'REJECT_MODE_CLOSE']]]],
  ['approval', 'Approval', [['required', 'bool', 'changes need a second admin']]],
];

function input(path, kind, value, opts) {
  const id = 'f-' + path.replace('.', '-');
  const a = { id, name: path, dataset: { field: path } };
  switch (kind) {
    case 'list': return h('textarea', a, (value || []).join('\n'));
    case 'bool': { const el = h('input', { ...a, type: 'checkbox' }); el.checked = !!value; return el; }
    case 'enum': return h('select', a, opts.map((o) => { const el = h('option', { value: o }, o.replace(/^REJECT_MODE_/, '').toLowerCase()); el.selected = o === value; return el; }));
    case 'int': case 'number': return h('input', { ...a, type: 'text', inputmode: 'decimal', value: value ?? '' });
    default: return h('input', { ...a, type: 'text', value: value ?? '', placeholder: 'e.g. 30s' });
  }
}

// present holds the optional groups the loaded policy had: one it did not
// have is left out again while its fields keep their zero values, so that
// editing nothing changes nothing.
let present = new Set();
const OPTIONAL = { handshake: (v) => !v.reject_with || v.reject_with === 'REJECT_MODE_UNSPECIFIED', approval: (v) => !v.required };

function read(form) {
  const p = {};
  for (const [g, , fields] of GROUPS) {
    p[g] = {};
    for (const [f, kind] of fields) {
      const el = form.elements[g + '.' + f];
      switch (kind) {
        case 'list': p[g][f] = el.value.split('\n').map((x) => x.trim()).filter(Boolean); break;
        case 'bool': p[g][f] = el.checked; break;
        case 'int': case 'number': {
          const v = el.value.trim();
          p[g][f] = v === '' ? 0 : (isNaN(Number(v)) ? v : Number(v));
          break;
        }
        default: if (el.value.trim() !== '') p[g][f] = el.value.trim();
      }
    }
    if (OPTIONAL[g] && !present.has(g) && OPTIONAL[g](p[g])) delete p[g];
  }
  return p;
}

// flat lists a policy's leaves as [path, text], in field order.
function flat(p) {
  const out = [];
  for (const [g, , fields] of GROUPS) {
    for (const [f] of fields) {
      const v = p && p[g] ? p[g][f] : undefined;
      out.push([g + '.' + f, Array.isArray(v) ? v.join(', ') : v === undefined ? '' : String(v)]);
    }
  }
  return out;
}

export function policyPage(el, ctx) {
  const poolSel = h('select', { id: 'pool' });
  const note = h('p', { id: 'policy-note' });
  const approvalNote = h('p', { id: 'approval-note', class: 'warn' });
  const history = h('div', { id: 'history' });
  const diffFrom = h('select', { id: 'diff-from' });
  const diffTo = h('select', { id: 'diff-to' });
  const diffOut = h('div', { id: 'diff' });
  const form = h('form', { class: 'policy', id: 'policy-form', novalidate: true });
  const formError = h('p', { class: 'error', id: 'form-error' });
  const result = h('div', { id: 'apply-result' });
  const expected = h('input', { id: 'expected', type: 'text', size: 6 });
  const message = h('input', { id: 'message', type: 'text', size: 40, placeholder: 'why (recorded in the history)' });
  const dis = !ctx.admin;
  const applyBtn = h('button', { id: 'apply', type: 'button', disabled: dis, title: dis ? 'admins only' : '' }, 'Apply');
  const dryBtn = h('button', { id: 'dry-run', type: 'button', disabled: dis, title: dis ? 'admins only' : '' }, 'Preview (dry run)');
  const loadBtn = h('button', { id: 'load-head', type: 'button' }, 'Reset to head');
  // The canary fields of ApplyPolicy and ProposePolicy: empty selector,
  // a change for every node at once.
  const canary = h('input', { id: 'canary', type: 'text', size: 16, disabled: dis, placeholder: 'e.g. zone=a' });
  const bake = h('input', { id: 'bake', type: 'text', size: 8, disabled: dis, placeholder: 'e.g. 5m' });
  const minSamples = h('input', { id: 'canary-min-samples', type: 'text', inputmode: 'numeric', size: 6, disabled: dis, placeholder: 'default' });
  const maxRatio = h('input', { id: 'canary-max-ratio', type: 'text', inputmode: 'decimal', size: 6, disabled: dis, placeholder: 'default' });
  const canaryRow = (field, label, ctl, hint) => h('div', { class: 'row', dataset: { row: field } }, h('label', { for: ctl.id }, label), ctl, h('span', { class: 'hint' }, ' ' + hint));
  const canaryFields = h('fieldset', { class: 'canary-fields', id: 'canary-fields' }, h('legend', {}, 'Canary rollout (optional)'),
    canaryRow('canary', 'canary selector', canary, 'only nodes whose labels match run it first; the rest keep the head'),
    canaryRow('bake', 'bake', bake, 'then it is promoted unless an error class is worse on the canary'),
    canaryRow('canary_min_samples', 'min samples', minSamples, 'events of a class before it counts against the canary'),
    canaryRow('canary_max_ratio', 'max ratio', maxRatio, 'canary rate over the rest\'s that rolls back'));
  let head = null;
  // propose: the head requires approval, so a change is a proposal.
  let propose = false;

  el.append(h('h1', {}, 'Policy'),
    h('div', { class: 'filters' }, h('label', {}, 'pool', poolSel)), note, approvalNote,
    h('h2', {}, 'Edit'), form, h('form', { class: 'policy', novalidate: true, onsubmit: (ev) => ev.preventDefault() }, canaryFields),
    h('div', { class: 'actions' }, h('label', {}, 'expected revision ', expected), h('label', {}, 'message ', message), dryBtn, applyBtn, loadBtn),
    formError, result,
    h('h2', {}, 'History'), history,
    h('h2', {}, 'Compare revisions'),
    h('div', { class: 'filters' }, h('label', {}, 'from', diffFrom), h('label', {}, 'to', diffTo), h('button', { type: 'button', id: 'diff-btn', onclick: diff }, 'Compare')),
    diffOut);
  if (dis) note.append(h('span', { class: 'muted' }, 'You are a viewer: changes are disabled.'));

  function fill(policy) {
    present = new Set(GROUPS.map(([g]) => g).filter((g) => policy && policy[g]));
    form.replaceChildren(...GROUPS.map(([g, title, fields]) => h('fieldset', { dataset: { field: g } }, h('legend', {}, title),
      fields.map(([f, kind, hint, opts]) => {
        const path = g + '.' + f;
        return h('div', { class: 'row', dataset: { row: path } }, h('label', { for: 'f-' + path.replace('.', '-') }, f.replaceAll('_', ' ')),
          input(path, kind, policy && policy[g] ? policy[g][f] : undefined, opts), hint ? h('span', { class: 'hint' }, ' ' + hint) : null);
      }))));
  }

  function clearErrors() {
    el.querySelectorAll('.field-error').forEach((x) => x.remove());
    el.querySelectorAll('.invalid').forEach((x) => x.classList.remove('invalid'));
    formError.textContent = '';
  }

  // showErrors puts each violation next to the field it names
  // ("origins.allow[1]" on the allow list); the rest above the form.
  function showErrors(e) {
    clearErrors();
    const rest = [];
    for (const v of e.violations || []) {
      const path = v.field.replace(/^policy\./, '').replace(/\[\d+\]/g, '');
      const row = el.querySelector(`[data-row="${CSS.escape(path)}"]`) || form.querySelector(`fieldset[data-field="${CSS.escape(path)}"]`);
      if (row) {
        row.append(h('span', { class: 'field-error', dataset: { violation: v.field } }, `${v.field}: ${v.description}`));
        const ctl = row.querySelector('input, textarea, select');
        if (ctl) ctl.classList.add('invalid');
      } else {
        rest.push(`${v.field}: ${v.description}`);
      }
    }
    formError.textContent = (e.status === 409 ? 'Conflict: ' : '') + e.message + (rest.length ? ' — ' + rest.join('; ') : '');
    formError.dataset.code = e.code || '';
  }

  async function loadPools() {
    const r = await rpc('PolicyService/ListPools');
    const want = poolSel.value || 'default';
    poolSel.replaceChildren(...r.pools.map((p) => { const o = h('option', { value: p.pool }, p.pool); o.selected = p.pool === want; return o; }));
  }

  async function loadPool(resetForm) {
    const pool = poolSel.value;
    const [cur, hist] = await Promise.all([rpc('PolicyService/GetPolicy', { pool }), rpc('PolicyService/ListPolicyRevisions', { pool, page_size: 100 })]);
    head = cur.revision;
    if (resetForm) { fill(head.policy); expected.value = head.revision; clearErrors(); }
    propose = !!(head.policy && head.policy.approval && head.policy.approval.required);
    applyBtn.textContent = propose ? 'Propose' : 'Apply';
    applyBtn.dataset.mode = propose ? 'propose' : 'apply';
    message.placeholder = propose ? 'why (required: the approver reads it)' : 'why (recorded in the history)';
    approvalNote.textContent = propose ? `Pool ${pool} requires approval (revision ${head.revision} has approval.required): a change is proposed, and another admin approves it on the Proposals page.` : '';
    history.replaceChildren(table(['revision', 'author', 'time', 'message', '', ''], hist.revisions.map((r) => h('tr', { dataset: { revision: r.revision } },
      h('td', {}, r.revision + (Number(r.revision) === Number(head.revision) ? ' (head)' : '')),
      h('td', {}, r.author + (r.approved_by ? ` (approved by ${r.approved_by})` : '')),
      h('td', {}, when(r.create_time)),
      h('td', { class: 'message' }, r.message + (Number(r.rollback_of) ? ` [rollback to ${r.rollback_of}]` : '') + rolloutNote(r) + (Number(r.proposal_id) ? ` [proposal ${r.proposal_id}]` : '')),
      h('td', {}, h('button', { type: 'button', class: 'edit-from', onclick: () => { fill(r.policy); clearErrors(); } }, 'Edit from this')),
      h('td', {}, h('button', { type: 'button', class: 'rollback', disabled: dis || Number(r.revision) === Number(head.revision), onclick: () => rollback(r.revision) }, 'Roll back to this'))))));
    const opts = hist.revisions.map((r) => r.revision);
    const keepFrom = diffFrom.value, keepTo = diffTo.value;
    diffFrom.replaceChildren(...opts.map((v) => h('option', { value: v }, v)));
    diffTo.replaceChildren(...opts.map((v) => h('option', { value: v }, v)));
    diffFrom.value = keepFrom && opts.includes(keepFrom) ? keepFrom : (opts[1] || opts[0]);
    diffTo.value = keepTo && opts.includes(keepTo) ? keepTo : opts[0];
  }

  // canaryRequest adds the canary fields to req; false (with the field
  // marked) when the bake is not a duration.
  function canaryRequest(req) {
    if (canary.value.trim() !== '') req.canary = canary.value.trim();
    const b = parseDuration(bake.value);
    if (b === null) {
      showErrors({ message: 'Not sent.', violations: [{ field: 'bake', description: 'not a duration (e.g. 5m, 90s, 1h30m)' }] });
      return false;
    }
    if (b !== '') req.bake = b;
    if (minSamples.value.trim() !== '') req.canary_min_samples = Number(minSamples.value.trim());
    if (maxRatio.value.trim() !== '') req.canary_max_ratio = Number(maxRatio.value.trim());
    return true;
  }

  async function proposeIt() {
    clearErrors();
    result.replaceChildren();
    const req = { pool: poolSel.value, policy: read(form), message: message.value };
    if (expected.value.trim() !== '') req.expected_revision = Number(expected.value);
    if (!canaryRequest(req)) return;
    try {
      const r = await rpc('PolicyService/ProposePolicy', req);
      const p = r.proposal;
      result.replaceChildren(h('p', { class: 'ok', id: 'applied', dataset: { proposal: p.id } }, `Proposed as proposal ${p.id}: another admin approves it on the `, h('a', { href: '#proposals' }, 'Proposals page'), '.'),
        h('ul', {}, (p.changes || []).map((c) => h('li', {}, `${c.field}: ${c.old_value || '∅'} → ${c.new_value || '∅'}`))), impactView(p.impact));
      message.value = '';
    } catch (e) {
      if (e.status === 401) return ctx.onAuthLost();
      showErrors(e);
    }
  }

  async function apply(dryRun) {
    if (propose && !dryRun) return proposeIt();
    clearErrors();
    result.replaceChildren();
    const req = { pool: poolSel.value, policy: read(form), message: message.value, dry_run: dryRun };
    if (expected.value.trim() !== '') req.expected_revision = Number(expected.value);
    if (!canaryRequest(req)) return;
    try {
      const r = await rpc('PolicyService/ApplyPolicy', req);
      const changes = (r.changes || []).map((c) => h('li', {}, `${c.field}: ${c.old_value || '∅'} → ${c.new_value || '∅'}`));
      if (dryRun) {
        result.replaceChildren(h('h3', {}, 'Preview'), r.unchanged ? h('p', {}, 'No change.') : h('ul', { id: 'preview-changes' }, changes), impactView(r.impact));
        return;
      }
      const rollout = r.revision && r.revision.rollout;
      result.replaceChildren(h('p', { class: 'ok', id: 'applied' }, r.unchanged ? `Unchanged: revision ${r.revision.revision} already has this policy.`
        : rollout ? [`Applied canary revision ${r.revision.revision} to nodes matching ${rollout.selector}; the rest keep revision ${rollout.base_revision}. Follow it on the `, h('a', { href: '#rollout' }, 'Rollout page'), '.']
          : `Applied revision ${r.revision.revision}.`), h('ul', {}, changes));
      message.value = '';
      canary.value = bake.value = minSamples.value = maxRatio.value = '';
      await loadPool(true);
    } catch (e) {
      if (e.status === 401) return ctx.onAuthLost();
      showErrors(e);
    }
  }

  async function rollback(rev) {
    clearErrors();
    try {
      const r = await rpc('PolicyService/RollbackPolicy', { pool: poolSel.value, to_revision: rev, message: message.value || `rollback to ${rev} (console)`, expected_revision: head ? Number(head.revision) : undefined });
      result.replaceChildren(h('p', { class: 'ok' }, `Rolled back: revision ${r.revision.revision} has revision ${rev}'s content.`));
      await loadPool(true);
    } catch (e) {
      showErrors(e);
    }
  }

  async function diff() {
    const pool = poolSel.value;
    const from = Number(diffFrom.value), to = Number(diffTo.value);
    try {
      const [a, b, d] = await Promise.all([rpc('PolicyService/GetPolicy', { pool, revision: from }), rpc('PolicyService/GetPolicy', { pool, revision: to }),
        rpc('PolicyService/DiffPolicy', { pool, from_revision: from, to_revision: to })]);
      const left = flat(a.revision.policy), right = new Map(flat(b.revision.policy));
      const cells = [h('div', { class: 'hdr' }, `revision ${from}`), h('div', { class: 'hdr' }, `revision ${to}`)];
      for (const [path, v] of left) {
        const w = right.get(path);
        const cls = v === w ? '' : 'changed';
        cells.push(h('div', { class: cls }, `${path}: ${v}`), h('div', { class: cls }, `${path}: ${w}`));
      }
      diffOut.replaceChildren(h('div', { class: 'diff' }, cells),
        h('p', { class: 'muted' }, d.changes.length ? `${d.changes.length} field(s) differ.` : 'The revisions have the same content.'));
    } catch (e) {
      diffOut.replaceChildren(h('p', { class: 'error' }, errorText(e)));
    }
  }

  applyBtn.addEventListener('click', () => apply(false));
  dryBtn.addEventListener('click', () => apply(true));
  loadBtn.addEventListener('click', () => loadPool(true));
  poolSel.addEventListener('change', () => loadPool(true));
  loadPools().then(() => loadPool(true)).catch((e) => { if (e.status === 401) ctx.onAuthLost(); else note.textContent = errorText(e); });
  return { stop() {} };
}

// rolloutNote marks a canary revision and the one that ended its rollout
// in the history, as wsctl policy history does.
function rolloutNote(r) {
  if (r.rollout) return ` [canary ${r.rollout.selector}, bake ${fmtDuration(r.rollout.bake)}, base ${r.rollout.base_revision}]`;
  const o = r.rollout_outcome;
  if (!o) return '';
  const how = o.result === 'ROLLOUT_RESULT_PROMOTED' ? 'promoted' : 'rolled back';
  return ` [canary ${o.canary_revision} ${how}${o.automatic ? ' automatically' : ''}]`;
}

// impactView shows ApplyPolicyResponse.impact / Proposal.impact: what the
// change would have done to the last hour of the pool's traffic. Limits
// that recent peaks exceed come first: they are what would refuse traffic.
export function impactView(impact, id = 'impact') {
  if (!impact) return h('p', { class: 'muted', id }, 'No impact estimate (the control plane has none for this change).');
  const origin = (o) => o.origin === '' ? '(no Origin header)' : o.origin;
  const rows = [];
  for (const o of impact.newly_rejected || []) rows.push(h('tr', { class: 'error', dataset: { effect: 'rejected', origin: o.origin } }, h('td', {}, 'newly rejected'), h('td', { class: 'origin' }, origin(o)), h('td', { class: 'count' }, o.handshakes), h('td', {}, 'accepted in the window, refused by the new allowlist')));
  for (const o of impact.newly_admitted || []) rows.push(h('tr', { class: 'ok', dataset: { effect: 'admitted', origin: o.origin } }, h('td', {}, 'newly admitted'), h('td', { class: 'origin' }, origin(o)), h('td', { class: 'count' }, o.handshakes), h('td', {}, 'rejected as origin_rejected in the window, admitted by the new allowlist')));
  const limits = [...(impact.limits || [])].sort((a, b) => Number(b.exceeded) - Number(a.exceeded));
  const exceeded = limits.filter((l) => l.exceeded).length;
  const limitRows = limits.map((l) => h('tr', { class: l.exceeded ? 'error' : '', dataset: { limit: l.field } },
    h('td', {}, l.field), h('td', {}, Number(l.old_limit) === Number(l.limit) ? `${l.limit} (unchanged)` : `${l.old_limit} → ${l.limit}`),
    h('td', {}, `${l.peak}` + (l.node_id ? ` on ${l.node_id}` : '') + (l.peak_minute ? ` at ${when(l.peak_minute)}` : '')),
    h('td', {}, l.exceeded ? 'exceeded' : 'ok')));
  // No node reported traffic: "nothing would change" would be a false
  // reassurance (a restarted control plane, a pool whose nodes run
  // another pool's policy); say so, as wsctl does.
  const reporting = Number(impact.nodes_reporting || 0);
  const start = Date.parse(impact.window_start), end = Date.parse(impact.window_end);
  const shortWindow = Number.isFinite(start) && Number.isFinite(end) && end - start < 59 * 60 * 1000;
  return h('div', { id, class: 'impact' },
    h('p', {}, `Impact on the traffic from ${when(impact.window_start)} to ${when(impact.window_end)}, ${reporting} node(s) reporting.`),
    reporting === 0 ? h('p', { class: 'warn no-traffic' }, 'No traffic seen: no node reported a traffic sample in this window, so the preview cannot tell which accepted origins would be rejected or which limits recent peaks would exceed.') : null,
    shortWindow ? h('p', { class: 'warn short-window' }, `The window is short: the control plane keeps traffic in memory and has none from before ${when(impact.window_start)} (restarted?).`) : null,
    exceeded ? h('p', { class: 'error limits-exceeded' }, `${exceeded} limit(s) below a recent peak: the new policy would have refused some of that traffic.`) : null,
    rows.length ? table(['effect', 'origin', 'handshakes', ''], rows) : (reporting === 0 ? null : h('p', { class: 'no-origin-change' }, 'No origin would be newly rejected or admitted.')),
    Number(impact.unattributed_accepted) ? h('p', { class: 'warn' }, `${impact.unattributed_accepted} accepted handshake(s) were not attributed to an origin (over the nodes' per-minute origin cap): their fate is unknown.`) : null,
    limitRows.length ? table(['limit', 'change', 'recent peak', ''], limitRows) : null,
    (impact.missing_replicas || []).length ? h('p', { class: 'warn' }, 'Missing from these figures (replicas that did not answer): ' + impact.missing_replicas.join(', ')) : null);
}
