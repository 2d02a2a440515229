// agentd page-state collector, called as `(collector)(opts)` in one document (Runtime.evaluate).
// Walks the document, its open shadow roots and same-origin iframes in document order and
// returns `items`: interactive elements (with a stable index kept in `window.__agentd`) and
// the visible text between them, one item per block of text. A cross-origin iframe is
// returned as a placeholder with the origin of its content box, so the caller can run the
// collector again inside it with `opts = { ox, oy, frame, next, vw, vh }`.
(opts) => {
  const A = (window.__agentd ||= { ids: new WeakMap(), byId: new Map(), next: 1 });
  // Numbering continues above every index any document of the page has handed out.
  if (opts.next > A.next) A.next = opts.next;
  const ROLES = new Set(['button', 'link', 'checkbox', 'radio', 'tab', 'menuitem', 'menuitemcheckbox',
    'menuitemradio', 'option', 'switch', 'combobox', 'textbox', 'searchbox', 'slider', 'spinbutton',
    'listbox', 'treeitem', 'generic']);
  const SKIP = new Set(['script', 'style', 'noscript', 'template', 'head', 'title', 'meta', 'link']);
  const BLOCK = new Set(['address', 'article', 'aside', 'blockquote', 'br', 'dd', 'details', 'dialog', 'div',
    'dl', 'dt', 'fieldset', 'figcaption', 'figure', 'footer', 'form', 'h1', 'h2', 'h3', 'h4', 'h5', 'h6',
    'header', 'hr', 'li', 'main', 'nav', 'ol', 'p', 'pre', 'section', 'summary', 'table', 'td', 'th', 'tr', 'ul', 'label']);
  const vw = opts.vw || window.innerWidth, vh = opts.vh || window.innerHeight;
  const items = [];
  const clip = (s, n) => { s = (s || '').replace(/\s+/g, ' ').trim(); return s.length > n ? s.slice(0, n - 1) + '…' : s; };
  const textOf = (doc, id) => { const e = doc.getElementById(id); return e ? e.innerText || e.textContent : ''; };
  function roleOf(el) {
    const r = (el.getAttribute('role') || '').trim().split(/\s+/)[0];
    if (r && r !== 'presentation' && r !== 'none') return r;
    const t = el.localName;
    if (t === 'a') return el.hasAttribute('href') ? 'link' : null;
    if (t === 'button' || t === 'summary') return 'button';
    if (t === 'select') return el.multiple || el.size > 1 ? 'listbox' : 'combobox';
    if (t === 'textarea') return 'textbox';
    if (t === 'input') {
      const ty = (el.type || 'text').toLowerCase();
      if (ty === 'hidden') return null;
      if (['button', 'submit', 'reset', 'image', 'file', 'color'].includes(ty)) return 'button';
      if (ty === 'checkbox') return 'checkbox';
      if (ty === 'radio') return 'radio';
      if (ty === 'range') return 'slider';
      if (ty === 'number') return 'spinbutton';
      if (ty === 'search') return 'searchbox';
      return 'textbox';
    }
    if (el.isContentEditable && (!el.parentElement || !el.parentElement.isContentEditable)) return 'textbox';
    if (el.hasAttribute('onclick') || (el.tabIndex >= 0 && el.hasAttribute('tabindex'))) return 'generic';
    return null;
  }
  function nameOf(el, doc) {
    const aria = el.getAttribute('aria-label');
    if (aria && aria.trim()) return aria;
    const by = el.getAttribute('aria-labelledby');
    if (by) { const s = by.split(/\s+/).map(id => textOf(doc, id)).join(' '); if (s.trim()) return s; }
    if (el.labels && el.labels.length) { const s = Array.from(el.labels).map(l => l.innerText || l.textContent).join(' '); if (s.trim()) return s; }
    const t = el.localName;
    if (t === 'input' && ['button', 'submit', 'reset'].includes((el.type || '').toLowerCase())) return el.value || el.type;
    if (t === 'input' && el.type === 'image') return el.alt || 'image';
    const text = el.innerText || el.textContent;
    if (text && text.trim() && !['input', 'textarea', 'select'].includes(t)) return text;
    const img = el.querySelector && el.querySelector('img[alt]');
    if (img && img.alt.trim()) return img.alt;
    return el.getAttribute('placeholder') || el.getAttribute('title') || el.getAttribute('alt') || el.getAttribute('name') || '';
  }
  function visible(el, rect) {
    if (rect.width <= 0 || rect.height <= 0) return false;
    // checkVisibility also sees content-visibility (closed <details>, skipped subtrees).
    if (el.checkVisibility) return el.checkVisibility({ opacityProperty: true, visibilityProperty: true });
    const cs = el.ownerDocument.defaultView.getComputedStyle(el);
    return cs.visibility !== 'hidden' && cs.display !== 'none' && parseFloat(cs.opacity || '1') > 0;
  }
  // How far a box lies outside the top viewport (all 0 when at least partly inside).
  function offscreen(x, y, w, h) {
    return {
      above: y + h < 0 ? Math.round(-(y + h)) : 0,
      below: y > vh ? Math.round(y - vh) : 0,
      beside: x > vw ? Math.round(x - vw) : (x + w < 0 ? Math.round(-(x + w)) : 0),
    };
  }
  // Visible text is gathered per block and flushed when a block or an element starts or ends.
  let text = [], textBox = null;
  const shown = new Map();
  function textNode(n, ox, oy) {
    const s = n.nodeValue;
    if (!s || !s.trim()) return;
    const p = n.parentElement;
    if (!p) return;
    let box = shown.get(p);
    if (box === undefined) {
      const r = p.getBoundingClientRect();
      box = visible(p, r) ? offscreen(r.left + ox, r.top + oy, r.width, r.height) : null;
      shown.set(p, box);
    }
    if (!box) return;
    if (!textBox) textBox = box;
    text.push(s);
  }
  function flush() {
    if (text.length) {
      const s = clip(text.join(' '), 200);
      if (s) items.push({ text: s, ...textBox });
    }
    text = []; textBox = null;
  }
  function walk(node, doc, ox, oy, frame, quiet) {
    for (let c = node.firstChild; c; c = c.nextSibling) visit(c, doc, ox, oy, frame, quiet);
  }
  function visit(el, doc, ox, oy, frame, quiet) {
    if (el.nodeType === 3) { if (!quiet) textNode(el, ox, oy); return; }
    if (el.nodeType !== 1) return;
    const tag = el.localName;
    if (SKIP.has(tag)) return;
    if (tag === 'iframe' || tag === 'frame') {
      flush();
      const r = el.getBoundingClientRect();
      if (!visible(el, r)) return;
      const fx = ox + r.left + el.clientLeft, fy = oy + r.top + el.clientTop;
      let inner = null;
      try { inner = el.contentDocument; } catch (e) { inner = null; }
      if (inner && inner.documentElement) walk(inner, inner, fx, fy, frame + 1, false);
      else push(el, 'iframe', el.getAttribute('title') || el.src || '', r, ox, oy, frame, { cross_origin: true, fx, fy });
      flush();
      return;
    }
    const block = BLOCK.has(tag);
    if (block) flush();
    const role = roleOf(el);
    let listed = false;
    if (role && ROLES.has(role)) {
      const r = el.getBoundingClientRect();
      if (visible(el, r)) { flush(); push(el, role, nameOf(el, doc), r, ox, oy, frame, {}); listed = true; }
      else if (tag === 'input' && el.type === 'file') {
        // A hidden file input styled through its label: listed where the label is.
        const label = Array.from(el.labels || []).map(l => [l, l.getBoundingClientRect()]).find(([l, r]) => visible(l, r));
        if (label) { flush(); push(el, 'button', nameOf(el, doc), label[1], ox, oy, frame, {}); listed = true; }
      }
    }
    if (el.shadowRoot) walk(el.shadowRoot, doc, ox, oy, frame, quiet || listed);
    walk(el, doc, ox, oy, frame, quiet || listed);
    if (listed || block) flush();
  }
  function push(el, role, name, r, ox, oy, frame, extra) {
    let id = A.ids.get(el);
    if (!id) { id = A.next++; A.ids.set(el, id); }
    A.byId.set(id, new WeakRef(el));
    const x = r.left + ox, y = r.top + oy;
    const e = { index: id, role, name: clip(name, 80), tag: el.localName, x: Math.round(x), y: Math.round(y),
      w: Math.round(r.width), h: Math.round(r.height), frame, ...offscreen(x, y, r.width, r.height), ...extra };
    const t = el.localName;
    if (t === 'input' || t === 'textarea') {
      const ty = (el.type || 'text').toLowerCase();
      if (ty !== 'password' && !['checkbox', 'radio', 'button', 'submit', 'reset', 'file'].includes(ty)) e.value = clip(el.value, 60);
      if (ty === 'password' && el.value) e.value = '••••';
      if (ty === 'file' && el.files && el.files.length) e.value = Array.from(el.files).map(f => f.name).join(', ');
      if (!['text', 'textarea'].includes(ty) && t === 'input') e.type = ty;
    }
    if (t === 'select') e.value = clip(Array.from(el.selectedOptions).map(o => o.label).join(', '), 60);
    if (el.isContentEditable) e.value = clip(el.innerText, 60);
    if ('checked' in el && ['checkbox', 'radio'].includes(role)) e.checked = !!el.checked;
    else if (el.getAttribute('aria-checked')) e.checked = el.getAttribute('aria-checked') === 'true';
    if (el.getAttribute('aria-selected')) e.selected = el.getAttribute('aria-selected') === 'true';
    if (el.disabled || el.getAttribute('aria-disabled') === 'true') e.disabled = true;
    if (el.getAttribute('aria-expanded')) e.expanded = el.getAttribute('aria-expanded') === 'true';
    else if (t === 'summary' && el.parentElement && el.parentElement.localName === 'details') e.expanded = el.parentElement.open;
    if (t === 'a' && el.href) e.href = el.href;
    items.push(e);
  }
  walk(document, document, opts.ox || 0, opts.oy || 0, opts.frame || 0, false);
  flush();
  const se = document.scrollingElement || document.documentElement;
  return {
    url: location.href, title: document.title, next: A.next,
    scroll: { x: Math.round(window.scrollX), y: Math.round(window.scrollY), width: se.scrollWidth, height: se.scrollHeight,
      viewport_width: vw, viewport_height: vh },
    items,
  };
}
