// Interactive Storybook: the reader's page. This module routes between the screens and
// wires the page; each screen lives in its own module, shared state in state.js.
// document.body.dataset.state mirrors the screen:
//   boot | home | library | loading | reading | whole | story-error

import { $, elapsedSince, showView, t } from './dom.js';
import { clearPremiseError, hideFormError, hidePremiseHint, renderHome, updateCount, wireHome } from './home.js';
import { formatElapsed } from './i18n.js';
import { renderLibrary, syncLibraryFromServer } from './library.js';
import { leaveStory, openStory, wireReader } from './reader/session.js';
import { renderReaderView } from './reader/view.js';
import { updateReadAloud } from './speech.js';
import { render, session, setRenderer, ui } from './state.js';
import { listStories, loadUiLang, saveUiLang } from './store.js';
import { waitingSeconds } from './story.js';
import { renderWholeView } from './whole.js';
import { waitingText } from './widgets.js';

function renderScreen() {
  const hash = location.hash || '#/';
  if (session.current) {
    if (session.current.mode === 'whole') renderWholeView();
    else renderReaderView();
    return;
  }
  if (hash === '#/library') {
    showView('library');
    renderLibrary($('library-list'), listStories());
    $('library-empty').hidden = listStories().length > 0;
  } else {
    showView('home');
    renderHome();
  }
}

export function route() {
  const hash = location.hash || '#/';
  const m = hash.match(/^#\/story\/([^/?#]+)(\/all)?\/?$/);
  if (m) {
    const id = decodeURIComponent(m[1]);
    const mode = m[2] ? 'whole' : 'reader';
    if (!session.current || session.current.id !== id) openStory(id, mode);
    else {
      session.current.mode = mode;
      if (mode === 'reader') $('page-after').dataset.sig = '';
      render();
    }
    return;
  }
  leaveStory();
  document.body.dataset.storyStatus = '';
  document.title = t('docTitle');
  render();
  syncLibraryFromServer();
}

export function applyI18n() {
  document.documentElement.lang = t('htmlLang');
  for (const el of document.querySelectorAll('[data-i18n]')) {
    const v = t(el.dataset.i18n);
    if (typeof v === 'string') el.textContent = v;
  }
  for (const el of document.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':');
      const v = t(key);
      if (attr && typeof v === 'string') el.setAttribute(attr, v);
    }
  }
  $('ui-lang-toggle').setAttribute('lang', ui.lang === 'zh' ? 'en' : 'zh-CN');
  for (const r of document.querySelectorAll('input[name="language"]')) r.checked = r.value === ui.lang;
  if (!session.current) document.title = t('docTitle');
  if (!session.starting) $('start-button').querySelector('.btn-label').textContent = t('start');
  updateCount();
}

export function setUiLang(lang) {
  if (lang !== 'zh' && lang !== 'en') return;
  ui.lang = lang;
  saveUiLang(lang);
  applyI18n();
  if (!$('premise-error').hidden) clearPremiseError();
  if (!$('form-error').hidden) hideFormError();
  hidePremiseHint();
  render();
  updateReadAloud();
}

export function tickElapsed() {
  for (const el of document.querySelectorAll('[data-started-at]')) {
    el.textContent = t('imageElapsed', formatElapsed(elapsedSince(el.dataset.startedAt)));
  }
  for (const el of document.querySelectorAll('[data-waiting-until]')) {
    const waiting = { until: Number(el.dataset.waitingUntil), retryIn: Number(el.dataset.waitingIn) };
    const text = el.querySelector('.waiting-note-text');
    if (text) text.textContent = waitingText(el.dataset.waitingReason, waitingSeconds(waiting));
  }
}

function init() {
  setRenderer(renderScreen);
  applyI18n();
  wireHome(setUiLang);
  wireReader();
  $('ui-lang-toggle').addEventListener('click', () => setUiLang(ui.lang === 'zh' ? 'en' : 'zh'));
  $('print-story').addEventListener('click', () => window.print());
  // Another tab changed the library or the language.
  window.addEventListener('storage', (e) => {
    if (e.key === 'storybook.uiLang') setUiLang(loadUiLang());
    else if (!session.current) render();
  });
  window.addEventListener('hashchange', route);
  setInterval(tickElapsed, 1000);
  route();
}

init();
