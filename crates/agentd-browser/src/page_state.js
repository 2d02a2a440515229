// agentd page-state collector. Runs in the page (Runtime.evaluate) and returns JSON:
// the interactive elements of the document, its open shadow roots and same-origin
// iframes, each with a stable index kept in a WeakMap that the page cannot see.
(() => {
  const A = (window.__agentd ||= { ids: new WeakMap(), byId: new Map(), next: 1 });
  const ROLES = new Set(['button', 'link', 'checkbox', 'radio', 'tab', 'menuitem', 'menuitemcheckbox',
    'menuitemradio', 'option', 'switch', 'combobox', 'textbox', 'searchbox', 'slider', 'spinbutton',
    'listbox', 'treeitem']);
  const vw = window.innerWidth, vh = window.innerHeight;
  const out = [];
  const clip = (s, n) => { s = (s || '').replace(/\s+/g, ' ').trim(); return s.length > n ? s.slice(0, n - 1) + '…' : s; };
  const textOf = (doc, id) => { const e = doc.getElementById(id); return e ? e.innerText || e.textContent : ''; };
  function roleOf(el) {
    const r = (el.getAttribute('role') || '').trim().split(/\s+/)[0];
    if (r) return r;
    const t = el.tagName.toLowerCase();
    if (t === 'a') return el.hasAttribute('href') ? 'link' : null;
    if (t === 'button' || t === 'summary') return 'button';
    if (t === 'select') return el.multiple || el.size > 1 ? 'listbox' : 'combobox';
    if (t === 'textarea') return 'textbox';
    if (t === 'input') {
      const ty = (el.type || 'text').toLowerCase();
      if (ty === 'hidden') return null;
      if (['button', 'submit', 'reset', 'image'].includes(ty)) return 'button';
      if (ty === 'checkbox') return 'checkbox';
      if (ty === 'radio') return 'radio';
      if (ty === 'range') return 'slider';
      if (ty === 'number') return 'spinbutton';
      if (ty === 'search') return 'searchbox';
      if (ty === 'file') return 'button';
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
    const t = el.tagName.toLowerCase();
    if (t === 'input' && ['button', 'submit', 'reset'].includes((el.type || '').toLowerCase())) return el.value || el.type;
    if (t === 'input' && el.type === 'image') return el.alt || 'image';
    const text = el.innerText || el.textContent;
    if (text && text.trim() && !['input', 'textarea', 'select'].includes(t)) return text;
    return el.getAttribute('placeholder') || el.getAttribute('title') || el.getAttribute('alt') || el.getAttribute('name') || '';
  }
  function visible(el, rect) {
    if (rect.width <= 0 || rect.height <= 0) return false;
    // checkVisibility also sees content-visibility (closed <details>, skipped subtrees).
    if (el.checkVisibility) return el.checkVisibility({ opacityProperty: true, visibilityProperty: true });
    const cs = el.ownerDocument.defaultView.getComputedStyle(el);
    return cs.visibility !== 'hidden' && cs.display !== 'none' && parseFloat(cs.opacity || '1') > 0;
  }
  function collect(root, doc, ox, oy, frame) {
    const walker = doc.createTreeWalker(root, NodeFilter.SHOW_ELEMENT);
    for (let el = walker.currentNode; el; el = walker.nextNode()) {
      if (el.nodeType !== 1) continue;
      if (el.shadowRoot) collect(el.shadowRoot, doc, ox, oy, frame);
      const tag = el.tagName.toLowerCase();
      if (tag === 'iframe' || tag === 'frame') {
        const r = el.getBoundingClientRect();
        let inner = null;
        try { inner = el.contentDocument; } catch (e) { inner = null; }
        if (inner && inner.documentElement) {
          collect(inner.documentElement, inner, ox + r.left + el.clientLeft, oy + r.top + el.clientTop, frame + 1);
        } else if (visible(el, r)) {
          push(el, 'iframe', el.getAttribute('title') || el.src || '', r, ox, oy, frame, { cross_origin: true });
        }
        continue;
      }
      const role = roleOf(el);
      if (!role || !(ROLES.has(role) || role === 'generic')) continue;
      const r = el.getBoundingClientRect();
      if (!visible(el, r)) continue;
      push(el, role, nameOf(el, doc), r, ox, oy, frame, {});
    }
  }
  function push(el, role, name, r, ox, oy, frame, extra) {
    let id = A.ids.get(el);
    if (!id) { id = A.next++; A.ids.set(el, id); }
    A.byId.set(id, new WeakRef(el));
    const x = r.left + ox, y = r.top + oy;
    const e = { index: id, role, name: clip(name, 80), tag: el.tagName.toLowerCase(), x: Math.round(x), y: Math.round(y),
      w: Math.round(r.width), h: Math.round(r.height), frame, ...extra };
    const t = el.tagName.toLowerCase();
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
    else if (t === 'summary' && el.parentElement && el.parentElement.tagName === 'DETAILS') e.expanded = el.parentElement.open;
    if (t === 'a' && el.href) e.href = el.href;
    // How far outside the viewport (0 when at least partly inside).
    e.above = y + r.height < 0 ? Math.round(-(y + r.height)) : 0;
    e.below = y > vh ? Math.round(y - vh) : 0;
    e.beside = x > vw ? Math.round(x - vw) : (x + r.width < 0 ? Math.round(-(x + r.width)) : 0);
    out.push(e);
  }
  collect(document.documentElement, document, 0, 0, 0);
  const se = document.scrollingElement || document.documentElement;
  return {
    url: location.href, title: document.title,
    scroll: { x: Math.round(window.scrollX), y: Math.round(window.scrollY), width: se.scrollWidth, height: se.scrollHeight,
      viewport_width: vw, viewport_height: vh },
    elements: out,
  };
})()
