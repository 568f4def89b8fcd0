import { rpc } from './api.js';
import { h, table, ago, when, errorText } from './dom.js';

// every runs f now and then every ms until stopped; a lost session ends it.
export function every(ms, f, ctx) {
  let timer = null;
  let stopped = false;
  const run = async () => {
    try {
      await f();
    } catch (e) {
      if (e && e.status === 401) { stopped = true; ctx.onAuthLost(); return; }
    }
    if (!stopped) timer = setTimeout(run, ms);
  };
  run();
  return { stop() { stopped = true; clearTimeout(timer); } };
}

async function allNodes() {
  const nodes = [];
  let token = '';
  let degraded = '';
  for (let i = 0; i < 20; i++) {
    const r = await rpc('FleetService/ListNodes', { page_size: 500, page_token: token });
    nodes.push(...r.nodes);
    degraded = degraded || r.degraded;
    token = r.next_page_token;
    if (!token) break;
  }
  return { nodes, degraded };
}

export function fleetPage(el, ctx) {
  const status = h('p', { class: 'muted' }, 'loading…');
  const pools = h('div', { id: 'pools' });
  const nodes = h('div', { id: 'nodes' });
  el.append(h('h1', {}, 'Fleet'), status, h('h2', {}, 'Pools'), pools, h('h2', {}, 'Nodes'), nodes);
  return every(3000, async () => {
    try {
      const [p, ln] = await Promise.all([rpc('PolicyService/ListPools'), allNodes()]);
      const list = ln.nodes;
      const drifted = (x) => x.connected && Number(x.applied_revision) !== Number(x.head_revision);
      pools.replaceChildren(table(['pool', 'head revision', 'author', 'changed', 'nodes', 'not on head'], p.pools.map((r) => {
        const inPool = list.filter((x) => (x.applied_pool || x.pool) === r.pool);
        const off = inPool.filter(drifted).length;
        return h('tr', {}, h('td', {}, r.pool), h('td', {}, r.revision), h('td', {}, r.author), h('td', {}, when(r.create_time)),
          h('td', {}, inPool.length), h('td', { class: off ? 'warn' : 'ok' }, off));
      })));
      nodes.replaceChildren(table(['node', 'pool', 'connected', 'applied', 'head', 'drift', 'last NACK', 'last seen', 'address', 'build'], list.map((x) => {
        const drift = drifted(x);
        return h('tr', { dataset: { node: x.node_id } },
          h('td', {}, x.node_id),
          h('td', {}, x.pool),
          h('td', { class: x.connected ? 'ok' : 'warn' }, x.connected ? 'connected' : 'disconnected'),
          h('td', { class: 'applied' }, (x.applied_pool || x.pool) + '@' + x.applied_revision),
          h('td', { class: 'head' }, x.head_revision),
          h('td', { class: drift ? 'warn' : 'ok' }, x.ahead ? 'ahead of store' : drift ? 'not on head' : 'on head'),
          h('td', { class: Number(x.last_nack_revision) ? 'error' : '' }, Number(x.last_nack_revision) ? `r${x.last_nack_revision}: ${x.last_nack_error}` : '—'),
          h('td', {}, ago(x.last_seen_time)),
          h('td', {}, x.address),
          h('td', {}, x.build));
      })));
      status.textContent = (ln.degraded ? 'Degraded view: ' + ln.degraded + '. ' : '') + `Updated ${new Date().toLocaleTimeString()}.`;
      status.className = ln.degraded ? 'warn' : 'muted';
    } catch (e) {
      status.textContent = errorText(e);
      status.className = 'error';
      throw e;
    }
  }, ctx);
}
