// h builds an element: h('td', {class: 'x', onclick: f}, 'text', child).
// Text always goes in as text nodes: node ids, origins and NACK texts come
// from outside.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function table(headers, rows) {
  return h('table', {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows));
}

export function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  return isNaN(d) ? '—' : d.toLocaleString();
}

export function ago(ts) {
  if (!ts) return '—';
  const s = Math.round((Date.now() - new Date(ts)) / 1000);
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

// className turns ERROR_CLASS_ORIGIN_REJECTED into origin_rejected.
export function className(c) { return String(c).replace(/^ERROR_CLASS_/, '').toLowerCase(); }

// errorText is an ApiError for people; unavailable calls say so.
export function errorText(e) {
  if (e && e.unavailable) return 'not available on this control plane';
  return (e && e.code ? e.code + ': ' : '') + (e && e.message ? e.message : String(e));
}

// UNITS are Go's duration units, as policy files and wsctl write them.
const UNITS = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };

// parseDuration turns a Go duration ("5m", "1m30s", "90s") into the
// seconds a proto Duration carries in JSON ("300s"); null when it is not
// one (the control plane names the field then).
export function parseDuration(text) {
  const s = String(text).trim();
  if (s === '') return '';
  const re = /(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)/y;
  let secs = 0;
  let m;
  while ((m = re.exec(s)) !== null) {
    secs += Number(m[1]) * UNITS[m[2]];
    if (re.lastIndex === s.length) return `${Number(secs.toFixed(9))}s`;
  }
  return null;
}

// fmtDuration shows a proto Duration's JSON ("300s") or a count of
// seconds the way Go prints durations ("5m0s").
export function fmtDuration(d) {
  let s = typeof d === 'number' ? d : parseFloat(String(d || '0'));
  if (!isFinite(s) || s <= 0) return '0s';
  const hrs = Math.floor(s / 3600); s -= hrs * 3600;
  const mins = Math.floor(s / 60); s -= mins * 60;
  const secs = Math.round(s * 1000) / 1000;
  if (hrs) return `${hrs}h${mins}m${secs}s`;
  if (mins) return `${mins}m${secs}s`;
  return `${secs}s`;
}

// enumName turns ROLLOUT_STATE_ROLLED_BACK (prefix ROLLOUT_STATE_) into ROLLED_BACK.
export function enumName(v, prefix) { return String(v || '').replace(prefix, ''); }
