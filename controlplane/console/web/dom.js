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
