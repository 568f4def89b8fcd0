import uPlot from './vendor/uPlot.esm.js';
import { rpc } from './api.js';
import { h, table, when, className, errorText } from './dom.js';

// One colour per class, in ErrorSeries' class order.
const COLORS = ['#d92d20', '#f79009', '#7a5af8', '#2e90fa', '#12b76a', '#ee46bc', '#667085', '#0e9384', '#b54708', '#6172f3', '#dc6803', '#099250', '#c11574', '#155eef', '#475467', '#98a2b3'];
const MAX_TAIL_ROWS = 200;
const stepped = uPlot.paths.stepped({ align: 1 });

export function errorsPage(el, ctx) {
  const pool = h('input', { id: 'filter-pool', type: 'text', placeholder: 'any' });
  const node = h('input', { id: 'filter-node', type: 'text', placeholder: 'any' });
  const origin = h('input', { id: 'filter-origin', type: 'text', placeholder: 'any' });
  const errorsOnly = h('input', { id: 'filter-errors-only', type: 'checkbox' });
  errorsOnly.checked = true;
  const status = h('p', { class: 'muted', id: 'chart-status' });
  const chartEl = h('div', { id: 'chart' });
  const totals = h('div', { id: 'chart-totals' });
  const top = h('div', { id: 'top-origins' });
  const traceIn = h('input', { id: 'trace-id', type: 'text', size: 40, placeholder: 'trace id' });
  const traceOut = h('div', { id: 'trace-result' });
  const tailBtn = h('button', { id: 'tail-toggle', type: 'button' }, 'Start live tail');
  const tailOut = h('div', { class: 'tail', id: 'tail' });
  const tailStatus = h('span', { class: 'muted', id: 'tail-status' });
  let plot = null;
  let timer = null;
  let source = null;
  let stopped = false;

  el.append(h('h1', {}, 'Errors'),
    h('form', { class: 'filters', id: 'error-filters', onsubmit: (e) => { e.preventDefault(); refresh(); } },
      h('label', {}, 'pool', pool), h('label', {}, 'node', node), h('label', {}, 'origin', origin),
      h('label', {}, 'errors only', errorsOnly), h('button', { type: 'submit' }, 'Apply filters')),
    h('h2', {}, 'Error classes per minute, last 24 hours'), status, chartEl, totals,
    h('h2', {}, 'Top origins, last 24 hours'), top,
    h('h2', {}, 'Trace lookup'),
    h('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); trace(); } }, traceIn, h('button', { type: 'submit', id: 'trace-btn' }, 'Look up')), traceOut,
    h('h2', {}, 'Live tail'), h('div', { class: 'actions' }, tailBtn, tailStatus), tailOut);

  function filter() {
    const f = { errors_only: errorsOnly.checked };
    if (pool.value.trim()) f.pool = pool.value.trim();
    if (node.value.trim()) f.node_id = node.value.trim();
    if (origin.value.trim()) f.origin = origin.value.trim();
    return f;
  }

  function draw(r) {
    const n = r.buckets;
    const start = new Date(r.start_time).getTime() / 1000;
    const step = parseFloat(r.step) || 60;
    const xs = Array.from({ length: n }, (_, i) => start + i * step);
    // Stacked: series i is the sum of classes 0..i. uPlot draws in order,
    // so the tallest (the total) goes first and each class is painted
    // over it; the legend keeps the class's own count.
    const raw = r.series.map((s) => s.counts.map(Number));
    const cum = [];
    raw.forEach((c, i) => cum.push(c.map((v, j) => v + (i ? cum[i - 1][j] : 0))));
    const order = r.series.map((_, i) => i).reverse();
    const data = [xs, ...order.map((i) => cum[i])];
    const series = [{}, ...order.map((i) => ({
      label: className(r.series[i].class),
      stroke: COLORS[i % COLORS.length],
      fill: COLORS[i % COLORS.length] + 'cc',
      // A minute is a block, not a point: a single rejection stays visible.
      paths: stepped,
      value: (u, v, si, di) => (di == null ? '—' : String(raw[i][di])),
    }))];
    chartEl.dataset.classes = r.series.map((s) => className(s.class)).join(',');
    if (plot) plot.destroy();
    plot = new uPlot({ width: Math.max(600, el.clientWidth - 20), height: 300, series, scales: { x: { time: true, range: (u, min, max) => [min, max + step] } }, axes: [{}, { label: 'events / min' }] }, data, chartEl);
    totals.replaceChildren(r.series.length
      ? table(['class', 'events'], r.series.map((s) => h('tr', { dataset: { class: className(s.class) } }, h('td', {}, className(s.class)), h('td', {}, s.counts.reduce((a, b) => a + Number(b), 0)))))
      : h('p', { class: 'muted' }, 'No events in the last 24 hours.'));
    const notes = [];
    if (Number(r.folded)) notes.push(`${r.folded} events were folded into origin "(other)" by the per-minute bounds; with an origin filter they are missing.`);
    if ((r.missing_replicas || []).length) notes.push('Missing replicas: ' + r.missing_replicas.map((m) => `${m.replica} (${m.error})`).join(', '));
    status.textContent = notes.join(' ') || `Updated ${new Date().toLocaleTimeString()}.`;
    status.className = notes.length ? 'warn' : 'muted';
  }

  async function refresh() {
    clearTimeout(timer);
    const end = new Date();
    const startTime = new Date(end.getTime() - 24 * 3600 * 1000);
    const f = { ...filter(), start_time: startTime.toISOString(), end_time: end.toISOString() };
    try {
      const [series, tops] = await Promise.all([
        rpc('FleetService/ErrorSeries', { filter: f, step: '60s' }),
        rpc('FleetService/TopErrors', { filter: f, group_by: 'GROUP_BY_ORIGIN', limit: 15 }),
      ]);
      draw(series);
      top.replaceChildren(tops.groups.length ? table(['origin', 'events', 'top class'], tops.groups.map((g) => h('tr', {}, h('td', {}, g.key || '(no Origin header)'), h('td', {}, g.count), h('td', {}, className(g.top_class)))))
        : h('p', { class: 'muted' }, 'None.'));
    } catch (e) {
      if (e.status === 401) { stopped = true; ctx.onAuthLost(); return; }
      status.textContent = errorText(e);
      status.className = 'error';
    }
    if (!stopped) timer = setTimeout(refresh, 15000);
  }

  async function trace() {
    const id = traceIn.value.trim();
    if (!id) return;
    try {
      const r = await rpc('FleetService/QueryEvents', { filter: { trace_id: id }, limit: 50 });
      traceOut.replaceChildren(r.events.length ? eventsTable(r.events) : h('p', { class: 'muted' }, 'No event with that trace id (it may have left the raw-event buffer).'));
    } catch (e) {
      traceOut.replaceChildren(h('p', { class: 'error' }, errorText(e)));
    }
  }

  function toggleTail() {
    if (source) return stopTail('stopped');
    const q = new URLSearchParams({ backlog: '20' });
    const f = filter();
    if (f.pool) q.set('pool', f.pool);
    if (f.node_id) q.set('node', f.node_id);
    if (f.origin) q.set('origin', f.origin);
    if (f.errors_only) q.set('errors_only', 'true');
    source = new EventSource('api/tail?' + q);
    tailBtn.textContent = 'Stop live tail';
    tailStatus.textContent = 'connecting…';
    source.onopen = () => { tailStatus.textContent = 'live'; };
    source.onmessage = (m) => {
      const r = JSON.parse(m.data);
      let line;
      if (r.event) {
        const e = r.event;
        line = `${when(e.time)}  ${className(e.class).padEnd(18)} ${e.node_id}  ${e.origin || '-'}  trace=${e.trace_id}  ${e.error || ''}`;
      } else if (r.replica_lost) line = `replica ${r.replica_lost.replica} lost: ${r.replica_lost.error}`;
      else if (r.replica_back) line = `replica ${r.replica_back} back`;
      else return;
      tailOut.prepend(h('div', {}, line));
      while (tailOut.childElementCount > MAX_TAIL_ROWS) tailOut.lastElementChild.remove();
    };
    source.addEventListener('end', (m) => stopTail('ended: ' + JSON.parse(m.data)));
    // EventSource reconnects by itself; a tail refused (401, 429) is not
    // retried here.
    source.onerror = () => { if (source && source.readyState === EventSource.CLOSED) stopTail('closed'); };
  }

  function stopTail(why) {
    if (source) source.close();
    source = null;
    tailBtn.textContent = 'Start live tail';
    tailStatus.textContent = why;
  }

  tailBtn.addEventListener('click', toggleTail);
  refresh();
  return { stop() { stopped = true; clearTimeout(timer); stopTail(''); if (plot) plot.destroy(); } };
}

export function eventsTable(events) {
  return table(['time', 'class', 'node', 'pool', 'origin', 'remote', 'trace id', 'detail'], events.map((e) => h('tr', {},
    h('td', {}, when(e.time)), h('td', {}, className(e.class)), h('td', {}, e.node_id), h('td', {}, e.pool), h('td', {}, e.origin),
    h('td', {}, e.remote_addr), h('td', {}, e.trace_id), h('td', {}, e.error || e.client_detail || ''))));
}
