// Building and speaking to the page: elements, words in the reader's language, the toast
// and the screen reader's status line.

import { ApiError } from './api.js';
import { friendlyError, STRINGS } from './i18n.js';
import { session, ui } from './state.js';

export const $ = (id) => document.getElementById(id);

/** Tiny element builder: h('div', {class: 'x', onclick}, child, 'text', ...) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v == null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else if (k === 'html') el.innerHTML = v; // only ever our own static SVG
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function t(key, ...args) {
  const v = STRINGS[ui.lang][key];
  return typeof v === 'function' ? v(...args) : v;
}

export const VIEWS = ['home', 'library', 'reader', 'whole'];

export function showView(name, state) {
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
  document.body.dataset.state = state || name;
  if (session.lastView !== name) {
    const first = session.lastView === null;
    session.lastView = name;
    window.scrollTo({ top: 0, behavior: 'auto' });
    if (!first) {
      const heading = { home: 'home-title', library: 'library-title', reader: 'story-title', whole: 'whole-title' }[name];
      $(heading)?.focus({ preventScroll: true });
    }
  }
}

const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');

export const scrollBehavior = () => (reducedMotion.matches ? 'auto' : 'smooth');

export function styleLabel(value) {
  const map = STRINGS[ui.lang].styles;
  return map[value] || value || '';
}

export function noteServerDate(dateHeader) {
  const d = Date.parse(dateHeader || '');
  if (Number.isNaN(d)) return;
  const diff = Date.now() - d;
  session.serverOffset = Math.abs(diff) > 3000 ? diff : 0;
}

export function elapsedSince(iso) {
  const start = Date.parse(iso || '');
  if (Number.isNaN(start)) return 0;
  return Math.max(0, Date.now() - session.serverOffset - start);
}

export function announce(text) {
  const el = $('sr-status');
  el.textContent = '';
  // A fresh text node after a tick so repeated sentences are read again.
  setTimeout(() => {
    el.textContent = text;
  }, 50);
}

let toastTimer = null;

export function showToast(message, { kind = 'info', action = null, timeout = 6000 } = {}) {
  const box = $('toast');
  box.replaceChildren();
  box.dataset.kind = kind;
  const text = h('span', { class: 'toast-text' }, message);
  if (kind === 'error') {
    text.dataset.testid = 'error-message';
    text.dataset.kind = 'toast';
  }
  box.append(text);
  if (action) {
    box.append(
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-small btn-light',
          'data-testid': 'toast-action',
          onclick: () => {
            hideToast();
            action.onClick();
          },
        },
        action.label,
      ),
    );
  }
  box.append(
    h(
      'button',
      { type: 'button', class: 'toast-close', 'aria-label': t('dismiss'), onclick: hideToast },
      '×',
    ),
  );
  box.hidden = false;
  clearTimeout(toastTimer);
  if (timeout) toastTimer = setTimeout(hideToast, timeout);
}

export function hideToast() {
  $('toast').hidden = true;
  clearTimeout(toastTimer);
}

export function errorText(err) {
  if (err instanceof ApiError && err.code === 'network') return t('network');
  return friendlyError(ui.lang, err);
}
