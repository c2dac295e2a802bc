// Interactive Storybook: the reader's page.
// Views: home (new story) · library · reader (one page at a time) · whole story.
// document.body.dataset.state mirrors the screen:
//   boot | home | library | loading | reading | whole | story-error

import { ApiError, StorySocket, api } from './api.js';
import { STRINGS, STYLES, formatElapsed, formatWait, friendlyError, suggestedIdea } from './i18n.js';
import {
  getStoryEntry,
  listStories,
  loadUiLang,
  mergeServerLibrary,
  removeStoryEntry,
  saveStoryEntry,
  saveUiLang,
  updateStoryEntry,
} from './store.js';
import {
  applyEvent,
  carryOver,
  chosenText,
  coverUrl,
  donePages,
  emptyStory,
  fromSnapshot,
  sheetUrl,
  waitingSeconds,
} from './story.js';

const MAX_PREMISE = 500;
const MAX_ACTION = 300;
const MIN_AGE = 3;
const MAX_AGE = 12;

// ------------------------------------------------------------------ helpers

const $ = (id) => document.getElementById(id);

/** Tiny element builder: h('div', {class: 'x', onclick}, child, 'text', ...) */
function h(tag, attrs, ...children) {
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

const ui = { lang: loadUiLang() };

function t(key, ...args) {
  const v = STRINGS[ui.lang][key];
  return typeof v === 'function' ? v(...args) : v;
}

const reducedMotion = window.matchMedia('(prefers-reduced-motion: reduce)');
const scrollBehavior = () => (reducedMotion.matches ? 'auto' : 'smooth');

function styleLabel(value) {
  const map = STRINGS[ui.lang].styles;
  return map[value] || value || '';
}

// Server clock vs ours, from the Date header of the last GET (ms; serverNow = Date.now() - offset).
let serverOffset = 0;
function noteServerDate(dateHeader) {
  const d = Date.parse(dateHeader || '');
  if (Number.isNaN(d)) return;
  const diff = Date.now() - d;
  serverOffset = Math.abs(diff) > 3000 ? diff : 0;
}
function elapsedSince(iso) {
  const start = Date.parse(iso || '');
  if (Number.isNaN(start)) return 0;
  return Math.max(0, Date.now() - serverOffset - start);
}

const ICONS = {
  speaker:
    '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><path d="M4 9h4l5-4v14l-5-4H4z" fill="currentColor"/><path d="M16 8.5a5 5 0 0 1 0 7M18.5 6a8.5 8.5 0 0 1 0 12" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round"/></svg>',
  stop: '<svg viewBox="0 0 24 24" width="22" height="22" aria-hidden="true"><rect x="6" y="6" width="12" height="12" rx="2.5" fill="currentColor"/></svg>',
  drawing: `<svg class="drawing-art" viewBox="0 0 160 120" aria-hidden="true">
      <rect x="18" y="12" width="124" height="90" rx="12" fill="#fffdf8" stroke="#ecd6b8" stroke-width="3"/>
      <path class="ink ink-1" d="M28 88 C 48 62, 64 92, 86 70 S 120 56, 132 66" stroke="#8cc084" stroke-width="7"/>
      <circle class="ink ink-2" cx="110" cy="36" r="11" stroke="#f6c453" stroke-width="7"/>
      <path class="ink ink-3" d="M34 40 q 10 -10 20 0 q 10 -10 20 0" stroke="#7fb7e0" stroke-width="6"/>
      <g class="pencil"><path d="M0 0 l 8 -8 l 30 30 l -8 8 z" fill="#f29e6d"/><path d="M0 0 l 8 -8 l -12 -4 z" fill="#ffe2b8"/><path d="M30 30 l 8 -8 l 4 4 l -8 8 z" fill="#d9607e"/></g>
    </svg>`,
  waiting: `<svg class="waiting-art" viewBox="0 0 160 120" aria-hidden="true">
      <rect x="18" y="12" width="124" height="90" rx="12" fill="#fffdf8" stroke="#ecd6b8" stroke-width="3" stroke-dasharray="8 8"/>
      <circle cx="60" cy="58" r="6" fill="#f6c453"/><circle cx="80" cy="58" r="6" fill="#f29e6d"/><circle cx="100" cy="58" r="6" fill="#7fb7e0"/>
    </svg>`,
  broken: `<svg class="broken-art" viewBox="0 0 160 120" aria-hidden="true">
      <rect x="18" y="12" width="124" height="90" rx="12" fill="#fffdf8" stroke="#ecd6b8" stroke-width="3"/>
      <path d="M40 84 l 22 -26 l 16 18 l 12 -12 l 26 20" fill="none" stroke="#d8c3a5" stroke-width="6" stroke-linecap="round" stroke-linejoin="round"/>
      <circle cx="110" cy="38" r="9" fill="#f3d9b3"/>
      <path d="M62 30 q 8 -8 16 0" fill="none" stroke="#d9607e" stroke-width="4" stroke-linecap="round"/>
    </svg>`,
};

// ------------------------------------------------------------------ announcements & toast

function announce(text) {
  const el = $('sr-status');
  el.textContent = '';
  // A fresh text node after a tick so repeated sentences are read again.
  setTimeout(() => {
    el.textContent = text;
  }, 50);
}

let toastTimer = null;
function showToast(message, { kind = 'info', action = null, timeout = 6000 } = {}) {
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
function hideToast() {
  $('toast').hidden = true;
  clearTimeout(toastTimer);
}

function errorText(err) {
  if (err instanceof ApiError && err.code === 'network') return t('network');
  return friendlyError(ui.lang, err);
}

// ------------------------------------------------------------------ speech

const speech = {
  supported:
    'speechSynthesis' in window && typeof window.SpeechSynthesisUtterance === 'function',
  key: null, // `${storyId}:${page}` being read
};

function pickVoice(lang) {
  const voices = window.speechSynthesis.getVoices() || [];
  const norm = (v) => (v.lang || '').replace('_', '-').toLowerCase();
  if (lang === 'zh') {
    return (
      voices.find((v) => norm(v) === 'zh-cn') ||
      voices.find((v) => norm(v).startsWith('zh-hans')) ||
      voices.find((v) => norm(v).startsWith('zh')) ||
      null
    );
  }
  return (
    voices.find((v) => norm(v) === 'en-us') || voices.find((v) => norm(v).startsWith('en')) || null
  );
}

function stopSpeaking() {
  if (!speech.supported) return;
  speech.key = null;
  try {
    window.speechSynthesis.cancel();
  } catch {
    /* ignore */
  }
  updateReadAloud();
}

function speak(key, text, lang) {
  if (!speech.supported || !text) return;
  window.speechSynthesis.cancel();
  const u = new SpeechSynthesisUtterance(text);
  u.lang = lang === 'en' ? 'en-US' : 'zh-CN';
  const voice = pickVoice(lang);
  if (voice) u.voice = voice;
  u.rate = 0.9;
  u.pitch = 1.05;
  u.onend = u.onerror = () => {
    if (speech.key === key) {
      speech.key = null;
      updateReadAloud();
    }
  };
  speech.key = key;
  window.speechSynthesis.speak(u);
  updateReadAloud();
}

if (speech.supported) {
  // Voices load lazily in some browsers.
  window.speechSynthesis.getVoices();
  window.speechSynthesis.addEventListener?.('voiceschanged', () => {});
}

// ------------------------------------------------------------------ current story

/**
 * current = {
 *   id, token, story, loaded, loadError, missing, mode: 'reader'|'whole',
 *   viewPage, socket, conn, wasDown, focusNext, newPageBadge
 * }
 */
let current = null;
const memory = new Map(); // story id -> story state seen this session (keeps lastSeq)

function leaveStory() {
  if (!current) return;
  if (current.socket) current.socket.close();
  current.socket = null;
  stopSpeaking();
  current = null;
  setBanner(null);
}

function latestIndex(story) {
  return story.pages.length - 1;
}

/**
 * Nothing to read yet: the story machine is still planning (the outline). The first page
 * counts as started from the moment the story is created, so "no pages" alone is not it.
 */
function isPlanning(story) {
  if (!story) return false;
  if (story.pages.length === 0) return story.status !== 'failed';
  const first = story.pages[0];
  return story.pages.length === 1 && !story.title && first.status === 'writing' && !first.text;
}

/** Where a story opens: a finished one at its first page, one in progress where it is being written. */
function firstPageToShow(story) {
  return story.status === 'ended' ? 0 : Math.max(0, latestIndex(story));
}

function syncLibrary(c) {
  if (!c || !c.story || c.missing) return;
  const s = c.story;
  updateStoryEntry(c.id, {
    title: s.title || undefined,
    status: s.status,
    pages: donePages(s),
    total: s.total,
    cover: coverUrl(s) || undefined,
    language: s.language,
    style: s.style || undefined,
    age: s.age,
  });
}

function openStory(id, mode) {
  leaveStory();
  const entry = getStoryEntry(id);
  if (!entry) {
    current = { id, missing: true, mode, story: null };
    render();
    return;
  }
  const cached = memory.get(id);
  const c = {
    id,
    token: entry.token,
    entry,
    story: cached || emptyStory(entry),
    loaded: Boolean(cached),
    loadError: null,
    missing: false,
    mode,
    viewPage: null,
    socket: null,
    conn: 'connecting',
    wasDown: false,
    focusNext: false,
    newPageBadge: false,
  };
  current = c;
  memory.set(id, c.story);
  render();
  loadStory(c);
}

async function loadStory(c) {
  try {
    const { data, date } = await api.getStory(c.id, c.token);
    if (current !== c) return;
    noteServerDate(date);
    const fresh = fromSnapshot(data);
    if (!fresh.id) fresh.id = c.id;
    c.story = carryOver(c.story, fresh);
    memory.set(c.id, c.story);
    c.loaded = true;
  } catch (err) {
    if (current !== c) return;
    if (err instanceof ApiError && [401, 403, 404].includes(err.status)) {
      c.loadError = err;
      render();
      return;
    }
    // Network trouble: carry on with what we have; the socket replays what is missing.
    c.loaded = true;
    if (!(err instanceof ApiError && err.code === 'network')) {
      showToast(errorText(err), { kind: 'error' });
    }
  }
  if (c.viewPage == null) c.viewPage = firstPageToShow(c.story);
  syncLibrary(c);
  render();
  connect(c);
}

/** Re-read the story after a conflict or a refused socket; the socket stays as it is. */
async function refreshStory(c) {
  try {
    const { data, date } = await api.getStory(c.id, c.token);
    if (current !== c) return;
    noteServerDate(date);
    const fresh = fromSnapshot(data);
    if (fresh.lastSeq < c.story.lastSeq) return; // what we have is newer
    if (!fresh.id) fresh.id = c.id;
    c.story = carryOver(c.story, fresh);
    memory.set(c.id, c.story);
    syncLibrary(c);
    render();
  } catch (err) {
    if (current !== c) return;
    if (err instanceof ApiError && [401, 403, 404].includes(err.status)) {
      c.loadError = err;
      if (c.socket) c.socket.close();
      c.socket = null;
      render();
    }
  }
}

function connect(c) {
  if (c.socket) c.socket.close();
  c.socket = new StorySocket({
    storyId: c.id,
    token: c.token,
    getAfter: () => c.story.lastSeq,
    onEvent: (msg) => onSocketMessage(c, msg),
    onState: (state) => onSocketState(c, state),
  });
  c.socket.connect();
}

let bannerTimer = null;
function setBanner(kind) {
  const el = $('conn-banner');
  clearTimeout(bannerTimer);
  document.body.dataset.connection = kind || 'open';
  if (!kind) {
    el.hidden = true;
    return;
  }
  el.dataset.kind = kind;
  $('conn-text').textContent = kind === 'back' ? t('connBack') : t('connLost');
  el.hidden = false;
  if (kind === 'back') bannerTimer = setTimeout(() => setBanner(null), 2500);
}

function onSocketState(c, state) {
  if (current !== c) return;
  c.conn = state;
  if (state === 'reconnecting') {
    c.wasDown = true;
    setBanner('lost');
  } else if (state === 'open') {
    setBanner(c.wasDown ? 'back' : null);
    c.wasDown = false;
  } else if (state === 'fatal') {
    setBanner(null);
    c.socket = null;
    // Find out why: a bad token or a deleted story shows a message, anything else retries.
    refreshStory(c).then(() => {
      if (current === c && !c.loadError && !c.socket) setTimeout(() => current === c && connect(c), 5000);
    });
  }
}

function onSocketMessage(c, msg) {
  if (current !== c) return;
  if (msg.type === 'error') {
    const story = c.story;
    for (const p of story.pages) if (p.local === 'choosing') p.local = null;
    showToast(friendlyError(ui.lang, msg.error), { kind: 'error' });
    render();
    return;
  }
  const story = c.story;
  const wasLatest = c.viewPage == null || c.viewPage >= latestIndex(story);
  const before = story.pages.length;
  const wasPlanning = isPlanning(story);
  const waited = typeof msg.page === 'number' && story.pages[msg.page] ? story.pages[msg.page].waiting : null;
  const change = applyEvent(story, msg);
  if (!change) return;

  if (change.kind === 'delta' && wasPlanning && !isPlanning(story)) {
    // The first words of the story: the planning card gives way to the book.
    if (change.page >= before) onNewPage(c, change.page, wasLatest);
    render();
    return;
  }
  if ((change.kind === 'delta' || change.kind === 'reset') && !(waited && !story.pages[change.page].waiting)) {
    if (change.page === c.viewPage && c.mode === 'reader') renderPageText(story.pages[change.page]);
    if (c.mode === 'whole') renderWhole();
    if (change.page >= before) onNewPage(c, change.page, wasLatest);
    return;
  }
  if (change.kind === 'page.started' && change.page >= before) onNewPage(c, change.page, wasLatest);

  const pageNo = change.page != null ? change.page + 1 : null;
  if (change.kind === 'page.done' && change.page === c.viewPage) announce(t('pageReadyAnnounce', pageNo));
  if (change.kind === 'image.ready' && change.page === c.viewPage) announce(t('imageReadyAnnounce', pageNo));
  if (change.kind === 'ended') announce(t('storyEndedAnnounce'));

  if (change.kind !== 'other') syncLibrary(c);
  render();
}

function onNewPage(c, index, wasLatest) {
  if (c.viewPage == null || wasLatest || c.focusNext) {
    const focus = c.focusNext;
    c.focusNext = false;
    setViewPage(index, { focus, scroll: focus });
  } else {
    c.newPageBadge = true;
  }
}

function setViewPage(index, { focus = false, scroll = false } = {}) {
  const c = current;
  if (!c || !c.story) return;
  const max = latestIndex(c.story);
  const next = Math.max(0, Math.min(index, max));
  if (next !== c.viewPage) stopSpeaking();
  c.viewPage = next;
  if (next >= max) c.newPageBadge = false;
  render();
  if (scroll) $('book').scrollIntoView({ behavior: scrollBehavior(), block: 'start' });
  if (focus) $('book').focus({ preventScroll: true });
}

// ------------------------------------------------------------------ actions on a page

/** The live page object (handlers must not hold on to one: a refresh replaces them). */
function livePage(c, index) {
  return c && c.story ? c.story.pages[index] || null : null;
}

async function choose(index, { choice = null, action = null }) {
  const c = current;
  let page = livePage(c, index);
  if (!page || page.local === 'choosing') return;
  page.local = 'choosing';
  page.pendingChoice = { choice, action };
  page.kindHint = null;
  c.focusNext = true;
  render();
  try {
    if (action != null) await api.act(c.id, c.token, page.index, action);
    else await api.choose(c.id, c.token, page.index, choice);
    // Stay "choosing" until page.chosen arrives on the socket.
  } catch (err) {
    if (current !== c) return;
    page = livePage(c, index);
    if (page) page.local = null;
    c.focusNext = false;
    if (err instanceof ApiError && err.code === 'unsuitable_idea' && page) {
      // Not an error: a kind sentence and another idea, next to the box. Nothing was chosen.
      page.kindHint = refusalMessage(err);
      render();
      announce(page.kindHint);
      $('page-after').querySelector('[data-testid="action-hint"]')?.scrollIntoView({ behavior: scrollBehavior(), block: 'center' });
      return;
    }
    showToast(errorText(err), { kind: 'error' });
    render();
    if (err instanceof ApiError && err.status === 409) refreshStory(c);
  }
}

/** The server's kind sentence for a refused idea (ours when it sent none). */
function refusalMessage(err) {
  const msg = err && err.message && err.message !== err.code ? err.message : '';
  return msg || STRINGS[ui.lang].errors.unsuitable_idea;
}

/** A gentle hint (not an error): the kind sentence, and its idea as a chip to tap. */
function kindHint(message, { testid = 'kind-hint', onUse = null, lang = null } = {}) {
  const idea = suggestedIdea(message);
  return h(
    'div',
    { class: 'kind-hint', 'data-testid': testid },
    h('span', { class: 'kind-hint-icon', 'aria-hidden': 'true' }, '🌱'),
    h(
      'div',
      { class: 'kind-hint-body' },
      h('p', { class: 'kind-hint-text', 'data-testid': 'kind-hint-text', lang }, message),
      idea && onUse
        ? h(
            'div',
            { class: 'kind-hint-try' },
            h('span', { class: 'kind-hint-label', 'aria-hidden': 'true' }, t('ideaTry')),
            h(
              'button',
              {
                type: 'button',
                class: 'chip chip-1 idea-chip',
                'data-testid': 'idea-chip',
                'aria-label': t('useIdea', idea),
                lang,
                onclick: () => onUse(idea),
              },
              h('span', { class: 'idea-chip-icon', 'aria-hidden': 'true' }, '✨'),
              h('span', null, idea),
            ),
          )
        : null,
    ),
  );
}

/** Back to the form with a premise ready (or an empty one). */
function startWith(premise) {
  const el = $('premise');
  el.value = premise || '';
  hidePremiseHint();
  clearPremiseError();
  location.hash = '#/';
  updateCount();
  setTimeout(() => el.focus({ preventScroll: false }), 0);
}

async function retryPage(index) {
  const c = current;
  let page = livePage(c, index);
  if (!page || page.local === 'retrying') return;
  page.local = 'retrying';
  render();
  try {
    await api.retryPage(c.id, c.token, index);
  } catch (err) {
    if (current !== c) return;
    page = livePage(c, index);
    if (page) page.local = null;
    showToast(errorText(err), { kind: 'error' });
    render();
    if (err instanceof ApiError && err.status === 409) refreshStory(c);
  }
}

async function redrawImage(index) {
  const c = current;
  let page = livePage(c, index);
  if (!page || page.imageLocal === 'redrawing') return;
  page.imageLocal = 'redrawing';
  render();
  try {
    await api.redrawImage(c.id, c.token, index);
  } catch (err) {
    if (current !== c) return;
    page = livePage(c, index);
    if (page) page.imageLocal = null;
    if (err instanceof ApiError && err.status === 409) {
      refreshStory(c); // it is already being drawn
    } else {
      showToast(errorText(err), { kind: 'error' });
    }
    render();
  }
}

// ------------------------------------------------------------------ views

const VIEWS = ['home', 'library', 'reader', 'whole'];
let lastView = null;

function showView(name, state) {
  for (const v of VIEWS) $(`view-${v}`).hidden = v !== name;
  document.body.dataset.state = state || name;
  if (lastView !== name) {
    const first = lastView === null;
    lastView = name;
    window.scrollTo({ top: 0, behavior: 'auto' });
    if (!first) {
      const heading = { home: 'home-title', library: 'library-title', reader: 'story-title', whole: 'whole-title' }[name];
      $(heading)?.focus({ preventScroll: true });
    }
  }
}

function render() {
  const hash = location.hash || '#/';
  if (current) {
    if (current.mode === 'whole') renderWholeView();
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

// ---------------------------------------------------------------- library, from the server

let librarySyncing = false;

/**
 * Refresh the device's library from the server (titles, status, pages, covers of the
 * stories whose tokens it holds). Offline or refused: the device's own copy stands.
 */
async function syncLibraryFromServer() {
  if (librarySyncing) return;
  const pairs = listStories()
    .filter((s) => s.id.length <= 64 && s.token.length <= 128)
    .map((s) => ({ story_id: s.id, token: s.token }));
  if (!pairs.length) return;
  librarySyncing = true;
  document.body.dataset.librarySync = 'pending';
  let changed = false;
  let ok = true;
  try {
    for (let i = 0; i < pairs.length; i += 100) {
      const { data } = await api.library(pairs.slice(i, i + 100));
      if (mergeServerLibrary(data && data.stories)) changed = true;
    }
  } catch {
    ok = false;
  } finally {
    librarySyncing = false;
  }
  if (changed && !current) render();
  document.body.dataset.librarySync = ok ? 'done' : 'failed';
}

// ---------------------------------------------------------------- home

const form = {
  style: 'watercolor',
};

function renderHome() {
  renderChips();
  renderStyles();
  updateCount();
  const stories = listStories();
  $('recent').hidden = stories.length === 0;
  if (stories.length) renderLibrary($('recent-list'), stories.slice(0, 3));
}

function renderChips() {
  const box = $('chips');
  const list = STRINGS[ui.lang].suggestions;
  if (box.dataset.lang === ui.lang) return;
  box.dataset.lang = ui.lang;
  box.replaceChildren(
    ...list.map((text, i) =>
      h(
        'button',
        {
          type: 'button',
          class: `chip chip-${i % 4}`,
          'data-testid': 'suggestion-chip',
          onclick: () => {
            const premise = $('premise');
            premise.value = text;
            updateCount();
            clearPremiseError();
            premise.focus();
          },
        },
        text,
      ),
    ),
  );
}

function renderStyles() {
  const box = $('styles');
  if (box.dataset.lang === ui.lang) return;
  box.dataset.lang = ui.lang;
  box.replaceChildren(
    ...STYLES.map((s) =>
      h(
        'label',
        { class: `style-card swatch-${s.swatch}` },
        h('input', {
          type: 'radio',
          name: 'style',
          value: s.value,
          'data-testid': 'style-option',
          checked: form.style === s.value,
          onchange: () => {
            form.style = s.value;
          },
        }),
        h(
          'span',
          { class: 'style-face' },
          h('span', { class: 'style-swatch', 'aria-hidden': 'true' }, h('span', { class: 'style-emoji' }, s.icon)),
          h('span', { class: 'style-name' }, styleLabel(s.value)),
        ),
      ),
    ),
  );
}

function updateCount() {
  const n = $('premise').value.length;
  const el = $('premise-count');
  el.textContent = t('premiseCount', n, MAX_PREMISE);
  el.classList.toggle('near', n > MAX_PREMISE * 0.9);
}

function showPremiseError(msg) {
  const el = $('premise-error');
  el.textContent = msg;
  el.hidden = false;
  $('premise').setAttribute('aria-invalid', 'true');
}
function clearPremiseError() {
  $('premise-error').hidden = true;
  $('premise').removeAttribute('aria-invalid');
}

function clampAge(v) {
  const n = Math.round(Number(v));
  if (!Number.isFinite(n)) return 6;
  return Math.max(MIN_AGE, Math.min(MAX_AGE, n));
}
function setAge(v) {
  const age = clampAge(v);
  $('age').value = String(age);
  $('age-minus').disabled = age <= MIN_AGE;
  $('age-plus').disabled = age >= MAX_AGE;
}

let starting = false;
async function startStory(e) {
  if (e) e.preventDefault();
  if (starting) return;
  const premise = $('premise').value.trim();
  hideFormError();
  hidePremiseHint();
  if (!premise) {
    showPremiseError(t('premiseEmpty'));
    $('premise').focus();
    return;
  }
  if (premise.length > MAX_PREMISE) {
    showPremiseError(t('premiseTooLong', MAX_PREMISE));
    $('premise').focus();
    return;
  }
  clearPremiseError();
  const age = clampAge($('age').value);
  setAge(age);
  const language = document.querySelector('input[name="language"]:checked')?.value === 'en' ? 'en' : 'zh';
  const style = form.style;
  setStarting(true);
  try {
    const { data } = await api.createStory({ premise, age, language, style });
    if (!data || !data.story_id || !data.token) throw new ApiError(500, 'llm_failed', '');
    saveStoryEntry({
      id: data.story_id,
      token: data.token,
      title: null,
      premise,
      language,
      style,
      age,
      status: 'in_progress',
      pages: 0,
      total: 6,
      created_at: new Date().toISOString(),
      cover: null,
    });
    $('premise').value = '';
    updateCount();
    location.hash = `#/story/${encodeURIComponent(data.story_id)}`;
  } catch (err) {
    showFormError(err);
  } finally {
    setStarting(false);
  }
}

function setStarting(on) {
  starting = on;
  const btn = $('start-button');
  btn.disabled = on;
  btn.setAttribute('aria-busy', on ? 'true' : 'false');
  btn.querySelector('.btn-label').textContent = on ? t('starting') : t('start');
}

function hideFormError() {
  $('form-error').hidden = true;
  $('form-error').replaceChildren();
}

function showPremiseHint(message) {
  const slot = $('premise-hint');
  slot.replaceChildren(
    kindHint(message, {
      testid: 'kind-hint',
      onUse: (idea) => {
        const premise = $('premise');
        premise.value = idea;
        updateCount();
        clearPremiseError();
        hidePremiseHint();
        premise.focus();
      },
    }),
  );
  slot.hidden = false;
  announce(message);
  slot.scrollIntoView({ behavior: scrollBehavior(), block: 'nearest' });
}

function hidePremiseHint() {
  const slot = $('premise-hint');
  slot.hidden = true;
  slot.replaceChildren();
}

function showFormError(err) {
  if (err && err.code === 'unsuitable_idea') {
    showPremiseHint(refusalMessage(err));
    return;
  }
  const box = $('form-error');
  let main;
  let hint;
  if (err.code === 'busy' || err.status === 503) {
    main = t('busy');
    hint = err.retryAfter != null ? t('retryAfter', formatWait(ui.lang, err.retryAfter)) : null;
  } else if (err.code === 'network') {
    main = t('network');
    hint = null;
  } else {
    const known = STRINGS[ui.lang].errors[err.code];
    main = err.message || known || t('network');
    hint = known && known !== main && err.code !== 'invalid_input' ? known : t('startFailedHint');
  }
  box.replaceChildren(
    h('span', { class: 'alert-icon', 'aria-hidden': 'true' }, '🙈'),
    h(
      'div',
      { class: 'alert-body' },
      h('p', { class: 'alert-main', 'data-testid': 'error-message', 'data-kind': 'start', 'data-code': err.code }, main),
      hint ? h('p', { class: 'alert-hint', 'data-testid': 'error-hint' }, hint) : null,
      err.code === 'invalid_input'
        ? null
        : h(
            'button',
            { type: 'button', class: 'btn btn-small btn-accent', 'data-testid': 'start-retry', onclick: () => startStory() },
            t('tryAgain'),
          ),
    ),
  );
  box.hidden = false;
  box.scrollIntoView({ behavior: scrollBehavior(), block: 'nearest' });
}

// ---------------------------------------------------------------- library

function formatDate(iso) {
  const d = new Date(iso || '');
  if (Number.isNaN(d.getTime())) return '';
  try {
    return new Intl.DateTimeFormat(ui.lang === 'zh' ? 'zh-CN' : 'en', {
      month: 'short',
      day: 'numeric',
      hour: '2-digit',
      minute: '2-digit',
    }).format(d);
  } catch {
    return d.toLocaleString();
  }
}

function renderLibrary(list, entries) {
  // Re-rendered when the server's summaries arrive: keep the focus where it was.
  const active = list.contains(document.activeElement) ? document.activeElement : null;
  const focusId = active ? active.closest('[data-story-id]')?.dataset.storyId : null;
  const focusTestid = active ? active.dataset.testid : null;
  list.replaceChildren(
    ...entries.map((s, i) => {
      const title = s.title || s.premise || t('untitled');
      const status = s.status || 'in_progress';
      return h(
        'li',
        { class: 'lib-item', 'data-testid': 'library-item', 'data-story-id': s.id, 'data-status': status },
        h(
          'a',
          { class: 'lib-open', href: `#/story/${encodeURIComponent(s.id)}`, 'data-testid': 'library-open' },
          h(
            'span',
            { class: `lib-cover tint-${i % 4}`, 'aria-hidden': 'true' },
            s.cover ? h('img', { src: s.cover, alt: '', loading: 'lazy', decoding: 'async' }) : h('span', { class: 'lib-cover-icon' }, '📖'),
          ),
          h(
            'span',
            { class: 'lib-body' },
            h('span', { class: 'lib-title' }, title),
            s.title && s.premise ? h('span', { class: 'lib-premise' }, s.premise) : null,
            h(
              'span',
              { class: 'lib-meta' },
              h('span', { class: `badge badge-${status}` }, STRINGS[ui.lang].status[status] || status),
              h('span', null, t('pagesCount', s.pages || 0, s.total || 6)),
              h('time', { datetime: s.created_at || '' }, formatDate(s.created_at)),
            ),
          ),
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'lib-remove',
            'data-testid': 'library-remove',
            'aria-label': t('libraryRemove', title),
            title: t('libraryRemove', title),
            onclick: () => removeFromLibrary(s.id),
          },
          h('span', { 'aria-hidden': 'true' }, '×'),
        ),
      );
    }),
  );
  if (focusId && focusTestid) {
    [...list.querySelectorAll(`[data-testid="${focusTestid}"]`)]
      .find((el) => el.closest('[data-story-id]')?.dataset.storyId === focusId)
      ?.focus({ preventScroll: true });
  }
}

function removeFromLibrary(id) {
  const removed = removeStoryEntry(id);
  if (!removed) return;
  const title = removed.title || removed.premise || t('untitled');
  render();
  showToast(t('removed', title), {
    action: {
      label: t('undo'),
      onClick: () => {
        saveStoryEntry(removed);
        render();
      },
    },
    timeout: 8000,
  });
  if (document.activeElement === document.body) $('main').focus({ preventScroll: true });
}

// ---------------------------------------------------------------- reader

function storyTitle(story) {
  return story.title || null;
}

function renderHeadFor(titleEl, bylineEl, c) {
  const s = c.story;
  const title = storyTitle(s);
  // A story that failed before it had a name will not get one: say so, not "thinking".
  titleEl.textContent = title || (s.status === 'failed' ? t('untitled') : t('titlePending'));
  if (title) titleEl.lang = storyLang(s);
  else titleEl.removeAttribute('lang');
  titleEl.classList.toggle('pending', !title);
  bylineEl.textContent = t('byline', s.age, styleLabel(s.style));
  document.title = `${title || t('appName')} · ${t('appName')}`;
}

function problemCard({ icon = '🙈', message, hint, buttons = [] }) {
  return h(
    'div',
    { class: 'notice card notice-problem', role: 'alert' },
    h('span', { class: 'notice-icon', 'aria-hidden': 'true' }, icon),
    h('p', { class: 'notice-main', 'data-testid': 'error-message', 'data-kind': 'story' }, message),
    hint ? h('p', { class: 'notice-hint' }, hint) : null,
    buttons.length ? h('div', { class: 'notice-actions' }, ...buttons) : null,
  );
}

function renderStoryProblem(noticeEl) {
  const c = current;
  let message;
  let code;
  if (c.missing) {
    message = t('notOnDevice');
    code = 'unauthorized';
  } else {
    code = c.loadError.code;
    message = c.loadError.status === 404 ? t('storyGone') : errorText(c.loadError);
  }
  const buttons = [h('a', { class: 'btn btn-primary', href: '#/', 'data-testid': 'go-home' }, t('goHome'))];
  if (!c.missing) {
    buttons.push(
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-soft',
          'data-testid': 'remove-broken-story',
          onclick: () => {
            removeStoryEntry(c.id);
            location.hash = '#/library';
          },
        },
        t('removeFromShelf'),
      ),
    );
  }
  const card = problemCard({ message, buttons });
  card.dataset.code = code;
  noticeEl.replaceChildren(card);
}

function planningCard(story) {
  return h(
    'div',
    { class: 'notice card notice-planning', 'data-testid': 'story-planning' },
    h(
      'div',
      { class: 'planning-art', 'aria-hidden': 'true' },
      h('span', { class: 'planning-book' }, '📖'),
      h('span', { class: 'spark sp1' }, '✦'),
      h('span', { class: 'spark sp2' }, '✧'),
      h('span', { class: 'spark sp3' }, '✦'),
    ),
    h('p', { class: 'notice-main' }, t('planning')),
    story.premise ? h('p', { class: 'notice-quote' }, `“${story.premise}”`) : null,
    firstWaiting(story) ? waitingNote(firstWaiting(story)) : h('p', { class: 'notice-hint' }, t('planningHint')),
  );
}

const firstWaiting = (story) => (story && story.pages[0] ? story.pages[0].waiting : null);

/** The storyteller waits out a rate limit or an outage: one calm sentence, counting down. */
function waitingText(reason, seconds) {
  return t(reason === 'llm_unreachable' ? 'waitingUnreachable' : 'waitingBusy', seconds);
}

function waitingNote(waiting) {
  return h(
    'p',
    {
      class: 'waiting-note',
      'data-testid': 'page-waiting',
      'data-waiting-reason': waiting.reason,
      'data-waiting-until': String(waiting.until),
      'data-waiting-in': String(waiting.retryIn),
    },
    h('span', { class: 'waiting-note-icon', 'aria-hidden': 'true' }, '⏳'),
    h('span', { class: 'waiting-note-text' }, waitingText(waiting.reason, waitingSeconds(waiting))),
  );
}

function storyFailedCard(story) {
  return problemCard({
    icon: '🌧️',
    message: story.error ? `${t('storyFailed')} ${friendlyError(ui.lang, story.error)}` : t('storyFailed'),
    hint: t('storyFailedHint'),
    buttons: [
      h(
        'button',
        {
          type: 'button',
          class: 'btn btn-primary',
          'data-testid': 'start-same',
          onclick: () => {
            $('premise').value = story.premise || '';
            location.hash = '#/';
          },
        },
        t('startSame'),
      ),
    ],
  });
}

function renderReaderView() {
  const c = current;
  const notice = $('reader-notice');
  const book = $('book');
  const nav = $('page-nav');
  const problem = c.missing || c.loadError;
  const story = c.story;
  const noPages = !story || story.pages.length === 0;
  const planning = isPlanning(story);
  let state = 'reading';
  if (problem) state = 'story-error';
  else if (!c.loaded && noPages) state = 'loading';
  showView('reader', state);
  document.body.dataset.storyStatus = story ? story.status : '';

  $('whole-link').href = `#/story/${encodeURIComponent(c.id)}/all`;
  if (problem) {
    $('story-title').textContent = t('appName');
    $('reader-byline').textContent = '';
    $('whole-link').hidden = true;
    renderStoryProblem(notice);
    book.hidden = true;
    nav.hidden = true;
    return;
  }
  renderHeadFor($('story-title'), $('reader-byline'), c);
  $('whole-link').hidden = noPages || planning;

  if (noPages || planning) {
    if (story.status === 'failed') {
      if (notice.dataset.sig !== `failed:${ui.lang}`) {
        notice.replaceChildren(storyFailedCard(story));
        notice.dataset.sig = `failed:${ui.lang}`;
      }
    } else {
      const waiting = firstWaiting(story);
      const sig = `planning:${ui.lang}:${waiting ? `${waiting.reason}:${waiting.until}` : ''}`;
      if (notice.dataset.sig !== sig) {
        notice.replaceChildren(planningCard(story));
        notice.dataset.sig = sig;
      }
    }
    book.hidden = true;
    nav.hidden = true;
    return;
  }
  notice.replaceChildren();
  notice.dataset.sig = '';
  book.hidden = false;
  nav.hidden = false;

  // Reopened from this visit's memory: the story is already here, so choose the page now
  // (the same rule as after loading it), not only once the GET answers.
  if (c.viewPage == null) c.viewPage = firstPageToShow(story);
  if (c.viewPage > latestIndex(story)) c.viewPage = latestIndex(story);
  const page = story.pages[c.viewPage];
  book.dataset.page = String(page.index);
  book.dataset.pageStatus = page.status;
  book.dataset.imageStatus = page.image ? page.image.status : 'none';

  $('page-indicator').textContent = t('pageOf', page.index + 1, story.total);
  renderPageText(page);
  renderPageNote($('page-note'), page, story);
  renderPageSheet($('page-sheet'), page, story);
  renderPicture($('picture'), page, story);
  renderPictureNote($('picture-note'), page);
  renderProblem($('page-problem'), page);
  renderAfter($('page-after'), page, story);
  renderNav(story);
  updateReadAloud();
}

const storyLang = (story) => (story && story.language === 'en' ? 'en' : 'zh-CN');

function renderPageText(page) {
  const el = $('page-text');
  if (current && current.story) el.lang = storyLang(current.story);
  if (el.textContent !== page.text) el.textContent = page.text;
  const writing = page.status === 'writing';
  el.toggleAttribute('data-writing', writing);
  el.setAttribute('aria-busy', writing ? 'true' : 'false');
  el.dataset.empty = page.text ? 'false' : 'true';
  if (writing && !page.text) {
    el.dataset.placeholder = t('writing');
  } else {
    delete el.dataset.placeholder;
  }
  updateReadAloud();
}

/** The kind sentence of a page whose typed idea was gently set aside. */
function renderPageNote(box, page, story) {
  const note = page.status === 'done' && page.note ? page.note : null;
  const sig = JSON.stringify([note, page.index, story.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren(...(note ? [pageNote(note, story)] : []));
}

function pageNote(note, story) {
  return h(
    'p',
    { class: 'page-note', 'data-testid': 'page-note', lang: storyLang(story) },
    h('span', { class: 'page-note-icon', 'aria-hidden': 'true' }, '🌈'),
    h('span', { class: 'page-note-text' }, note),
  );
}

/** "Meet the characters": the character sheet, small, on the first page once it is drawn. */
function renderPageSheet(box, page, story) {
  const url = page.index === 0 ? sheetUrl(story) : null;
  // After the sheet failed, on the latest page: the reader may ask for it again.
  const sheetState = story.sheet ? story.sheet.status : 'pending';
  const offer = !url && page.index === latestIndex(story) && (sheetState === 'failed' || story.sheetLocal === 'asking');
  const sig = JSON.stringify([url, offer, story.sheetLocal || null, ui.lang, story.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  if (offer) {
    box.replaceChildren(sheetAgainCard(story));
    return;
  }
  if (!url) {
    box.replaceChildren();
    return;
  }
  const c = current;
  const open = Boolean(c && c.sheetOpen);
  const more = h('span', { class: 'sheet-more' }, open ? t('sheetClose') : t('sheetOpen'));
  const figure = h(
    'figure',
    { class: `sheet-card${open ? ' open' : ''}`, 'data-testid': 'character-sheet' },
    h(
      'button',
      {
        type: 'button',
        class: 'sheet-toggle',
        'aria-expanded': open ? 'true' : 'false',
        onclick: (e) => {
          const now = !figure.classList.contains('open');
          figure.classList.toggle('open', now);
          e.currentTarget.setAttribute('aria-expanded', now ? 'true' : 'false');
          more.textContent = now ? t('sheetClose') : t('sheetOpen');
          if (current) current.sheetOpen = now;
        },
      },
      h(
        'span',
        { class: 'sheet-thumb' },
        h('img', { src: url, alt: t('sheetAlt'), 'data-testid': 'character-sheet-image', decoding: 'async' }),
      ),
      h(
        'span',
        { class: 'sheet-words' },
        h('span', { class: 'sheet-title' }, h('span', { 'aria-hidden': 'true' }, '👋 '), t('sheetTitle')),
        h('span', { class: 'sheet-sub' }, t('sheetSub')),
        more,
      ),
    ),
  );
  box.replaceChildren(figure);
}

/** The characters' picture failed: pages are drawn from their words until it is drawn again. */
function sheetAgainCard(story) {
  const asking = story.sheetLocal === 'asking';
  return h(
    'div',
    { class: 'sheet-again', 'data-testid': 'sheet-again' },
    h('p', { class: 'sheet-again-words' }, h('span', { 'aria-hidden': 'true' }, '🎨 '), t('sheetFailed')),
    h(
      'button',
      {
        type: 'button',
        class: 'btn btn-soft btn-small',
        'data-testid': 'sheet-again-button',
        disabled: asking ? true : null,
        onclick: () => redrawSheet(),
      },
      asking ? t('sheetAsking') : t('sheetAgain'),
    ),
  );
}

async function redrawSheet() {
  const c = current;
  if (!c || !c.story || c.story.sheetLocal === 'asking') return;
  c.story.sheetLocal = 'asking';
  render();
  try {
    await api.redrawSheet(c.id, c.token);
    if (current === c && c.story.sheet.status === 'failed') c.story.sheet = { status: 'pending', url: null, error: null };
  } catch (err) {
    if (current !== c) return;
    if (err instanceof ApiError && err.status === 409) refreshStory(c);
    else showToast(errorText(err), { kind: 'error' });
  }
  if (current === c) c.story.sheetLocal = null;
  render();
}

/** The whole story's cover: the characters, big, once drawn. */
function renderWholeSheet(story) {
  const box = $('whole-sheet');
  const url = sheetUrl(story);
  const sig = JSON.stringify([url, ui.lang, story.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren(
    ...(url
      ? [
          h(
            'figure',
            { class: 'sheet-cover', 'data-testid': 'whole-character-sheet' },
            h('img', { src: url, alt: t('sheetAlt'), decoding: 'async' }),
            h('figcaption', null, h('span', { 'aria-hidden': 'true' }, '👋 '), t('sheetTitle')),
          ),
        ]
      : []),
  );
}

/** Drawn without the character sheet: a small word under the picture, never over it. */
function renderPictureNote(box, page) {
  const img = page.image;
  const show = Boolean(img && img.status === 'ready' && img.url && img.note);
  const sig = JSON.stringify([show, show && img.note, ui.lang]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.hidden = !show;
  box.replaceChildren(...(show ? [h('span', { title: img.note }, t('imageTextOnly'))] : []));
}

/** The picture box: never empty, always says what is happening. */
function renderPicture(slot, page, story) {
  const img = page.image;
  let state;
  if (page.imageLocal === 'redrawing') state = 'redrawing';
  else if (img && img.status === 'ready' && img.url) state = page.imageLocal === 'load-failed' ? 'load-failed' : 'ready';
  else if (img && img.status === 'failed') state = 'failed';
  else if (page.status === 'failed' && page.error && page.error.code === 'unsuitable_idea') state = 'resting';
  else if (img && img.status === 'pending' && img.started_at) state = 'drawing';
  else if (img && img.status === 'none') state = 'resting';
  else if (img || page.status === 'done') state = 'queued';
  else state = 'waiting';

  const sig = JSON.stringify([
    state, img && img.url, img && img.started_at, img && img.error, img && img.note, ui.lang, page.index, story.id,
  ]);
  if (slot.dataset.sig === sig) return;
  slot.dataset.sig = sig;
  slot.dataset.state = state;
  const n = page.index + 1;

  const status = (kind, ...children) =>
    h('div', { class: `pic-status pic-${kind}`, 'data-testid': 'image-status', 'data-status': kind }, ...children);

  switch (state) {
    case 'ready': {
      const image = h('img', {
        class: 'pic-img',
        src: img.url,
        alt: t('imageAlt', n),
        'data-testid': 'page-image',
        decoding: 'async',
      });
      const frame = h(
        'div',
        { class: 'pic-frame loading' },
        image,
        h('span', { class: 'pic-loading-text', 'aria-hidden': 'true' }, t('imageLoading')),
      );
      image.addEventListener('load', () => frame.classList.remove('loading'));
      image.addEventListener('error', () => {
        const live = livePage(current, page.index);
        if (live && live.image && live.image.url === img.url) {
          live.imageLocal = 'load-failed';
          render();
        }
      });
      slot.replaceChildren(frame);
      if (image.complete && image.naturalWidth) frame.classList.remove('loading');
      break;
    }
    case 'drawing': {
      slot.replaceChildren(
        status(
          'drawing',
          h('div', { class: 'pic-art', html: ICONS.drawing }),
          h('p', { class: 'pic-title' }, t('imageDrawing')),
          h(
            'p',
            { class: 'pic-elapsed', 'data-testid': 'image-elapsed', 'data-started-at': img.started_at },
            t('imageElapsed', formatElapsed(elapsedSince(img.started_at))),
          ),
          h('p', { class: 'pic-hint' }, t('imageHint')),
        ),
      );
      break;
    }
    case 'queued':
    case 'redrawing': {
      slot.replaceChildren(
        status(
          state,
          h('div', { class: 'pic-art', html: ICONS.waiting }),
          h('p', { class: 'pic-title' }, state === 'redrawing' ? t('redrawing') : t('imageQueued')),
          h('p', { class: 'pic-hint' }, t('imageHint')),
        ),
      );
      break;
    }
    case 'resting': {
      // The premise was refused: nothing will be drawn, and nothing needs saying here.
      slot.replaceChildren(status('resting', h('div', { class: 'pic-art', html: ICONS.waiting })));
      break;
    }
    case 'waiting': {
      slot.replaceChildren(
        status(
          'waiting',
          h('div', { class: 'pic-art', html: ICONS.waiting }),
          h('p', { class: 'pic-title' }, t('imageWaitText')),
        ),
      );
      break;
    }
    case 'failed':
    case 'load-failed': {
      const failed = state === 'failed';
      const detail = failed ? friendlyError(ui.lang, img.error) : null;
      slot.replaceChildren(
        status(
          state,
          h('div', { class: 'pic-art', html: ICONS.broken }),
          h(
            'p',
            { class: 'pic-title', 'data-testid': 'error-message', 'data-kind': 'image', 'data-code': failed && img.error ? img.error.code : 'load' },
            failed ? t('imageFailed') : t('imageLoadFailed'),
          ),
          detail ? h('p', { class: 'pic-hint' }, detail) : null,
          h(
            'button',
            {
              type: 'button',
              class: 'btn btn-accent',
              'data-testid': failed ? 'redraw-button' : 'reload-image-button',
              onclick: () => {
                if (failed) redrawImage(page.index);
                else {
                  const live = livePage(current, page.index);
                  if (live) live.imageLocal = null;
                  slot.dataset.sig = '';
                  render();
                }
              },
            },
            h('span', { 'aria-hidden': 'true' }, '🖌️ '),
            failed ? t('redraw') : t('reload'),
          ),
        ),
      );
      break;
    }
    default:
      break;
  }
}

function renderProblem(box, page) {
  const sig = JSON.stringify([page.status, page.error, page.local, ui.lang, page.index, current && current.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  if (page.status !== 'failed') {
    box.replaceChildren();
    return;
  }
  if (page.error && page.error.code === 'unsuitable_idea') {
    // The premise was judged unsuitable: no retry (it would be refused again), a kind
    // word and a new story instead.
    const story = current && current.story;
    box.replaceChildren(
      h(
        'div',
        { class: 'kind-card', 'data-testid': 'page-refusal', 'data-code': page.error.code },
        kindHint(refusalMessage(page.error), {
          testid: 'refusal-hint',
          lang: story ? storyLang(story) : null,
          onUse: (idea) => startWith(idea),
        }),
        h(
          'a',
          {
            class: 'btn btn-primary',
            href: '#/',
            'data-testid': 'refusal-new-story',
            onclick: (e) => {
              e.preventDefault();
              startWith('');
            },
          },
          h('span', { 'aria-hidden': 'true' }, '✨ '),
          t('refusalNewStory'),
        ),
      ),
    );
    return;
  }
  const retrying = page.local === 'retrying';
  box.replaceChildren(
    h(
      'div',
      { class: 'alert alert-page', role: 'alert' },
      h('span', { class: 'alert-icon', 'aria-hidden': 'true' }, '✏️'),
      h(
        'div',
        { class: 'alert-body' },
        h('p', { class: 'alert-main', 'data-testid': 'error-message', 'data-kind': 'page', 'data-code': page.error ? page.error.code : '' }, t('pageFailed')),
        page.error ? h('p', { class: 'alert-hint' }, friendlyError(ui.lang, page.error)) : null,
        h(
          'button',
          {
            type: 'button',
            class: 'btn btn-accent',
            'data-testid': 'retry-button',
            disabled: retrying,
            'aria-busy': retrying ? 'true' : 'false',
            onclick: () => retryPage(page.index),
          },
          retrying ? t('retrying') : t('retry'),
        ),
      ),
    ),
  );
}

const CHOICE_TINTS = ['sun', 'leaf', 'sky', 'berry'];

function renderAfter(box, page, story) {
  const isLatest = page.index === latestIndex(story);
  const hasNext = page.index < latestIndex(story);
  const sig = JSON.stringify([
    page.index, page.status, page.choices, page.chosen, page.local, page.pendingChoice, page.kindHint,
    isLatest, hasNext, story.status, ui.lang, story.id,
    page.waiting ? [page.waiting.reason, page.waiting.until] : null,
  ]);
  if (box.dataset.sig === sig) return;
  // Keep what the reader is typing if the box is rebuilt.
  const typed = box.querySelector('#action-input')?.value;
  const hadFocus = box.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
  box.dataset.sig = sig;
  box.replaceChildren();

  if (page.status === 'writing') {
    if (page.waiting) box.append(waitingNote(page.waiting));
    else box.append(h('p', { class: 'writing-note' }, h('span', { class: 'dots-anim', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')), t('writing')));
    return;
  }
  if (page.status !== 'done') return;

  const chosen = chosenText(page);
  if (chosen) {
    box.append(
      h('p', { class: 'chosen-note', 'data-testid': 'chosen-note' }, h('span', { class: 'chosen-label' }, t('youChose')), chosen),
    );
    if (hasNext) {
      box.append(
        h(
          'button',
          { type: 'button', class: 'btn btn-primary', 'data-testid': 'go-next', onclick: () => setViewPage(page.index + 1, { focus: true, scroll: true }) },
          t('goNext'),
          h('span', { 'aria-hidden': 'true' }, ' →'),
        ),
      );
    } else if (story.status === 'in_progress') {
      box.append(writingNote(t('nextWriting')));
    }
    return;
  }

  const isLastPage = page.choices.length === 0;
  if (isLastPage) {
    if (story.status === 'ended' || page.index >= story.total - 1) {
      if (story.status === 'ended') box.append(endCard(story));
      else box.append(writingNote(t('waitEnding')));
    }
    return;
  }

  const choosing = page.local === 'choosing';
  const canChoose = isLatest && story.status === 'in_progress' && !choosing;
  const group = h('div', { class: 'choices', role: 'group', 'aria-labelledby': 'what-next' });
  page.choices.forEach((text, i) => {
    const picked = choosing && page.pendingChoice && page.pendingChoice.choice === i;
    group.append(
      h(
        'button',
        {
          type: 'button',
          class: `choice choice-${CHOICE_TINTS[i % CHOICE_TINTS.length]}${picked ? ' picked' : ''}`,
          'data-testid': 'choice-button',
          'data-choice': i,
          disabled: !canChoose,
          'aria-busy': picked ? 'true' : 'false',
          onclick: () => choose(page.index, { choice: i }),
        },
        h('span', { class: 'choice-num', 'aria-hidden': 'true' }, String(i + 1)),
        h('span', { class: 'choice-text', lang: storyLang(story) }, text),
        picked ? h('span', { class: 'choice-wait' }, t('sending')) : null,
      ),
    );
  });

  const input = h('input', {
    id: 'action-input',
    type: 'text',
    class: 'action-input',
    maxlength: MAX_ACTION,
    autocomplete: 'off',
    enterkeyhint: 'send',
    placeholder: t('ownIdeaPlaceholder'),
    'data-testid': 'action-input',
    'aria-describedby': 'action-error',
    disabled: !canChoose,
  });
  const err = h('p', { id: 'action-error', class: 'field-error', 'data-testid': 'action-error', hidden: true });
  const pickedAction = choosing && page.pendingChoice && page.pendingChoice.action != null;
  const ownForm = h(
    'form',
    {
      class: 'own-idea',
      'data-testid': 'action-form',
      novalidate: true,
      onsubmit: (e) => {
        e.preventDefault();
        const text = input.value.trim();
        if (!text) {
          err.textContent = t('ownIdeaEmpty');
          err.hidden = false;
          input.setAttribute('aria-invalid', 'true');
          input.focus();
          return;
        }
        choose(page.index, { action: text.slice(0, MAX_ACTION) });
      },
    },
    h('label', { for: 'action-input', class: 'field-label small' }, t('ownIdeaLabel')),
    h(
      'div',
      { class: 'own-idea-row' },
      input,
      h(
        'button',
        { type: 'submit', class: 'btn btn-primary', 'data-testid': 'action-send', disabled: !canChoose, 'aria-busy': pickedAction ? 'true' : 'false' },
        pickedAction ? t('sending') : t('send'),
      ),
    ),
    err,
    page.kindHint
      ? kindHint(page.kindHint, {
          testid: 'action-hint',
          lang: storyLang(story),
          onUse: (idea) => {
            const live = livePage(current, page.index);
            input.value = idea;
            if (live) live.kindHint = null;
            render();
            $('action-input')?.focus();
          },
        })
      : null,
  );
  input.addEventListener('input', () => {
    err.hidden = true;
    input.removeAttribute('aria-invalid');
  });
  if (typed) input.value = typed;
  else if (pickedAction) input.value = page.pendingChoice.action;

  box.append(
    h('div', { class: 'what-next' },
      h('h3', { id: 'what-next', class: 'what-next-title' }, t('whatNext')),
      group,
      ownForm,
    ),
  );
  if (hadFocus) box.querySelector(`[data-testid="${hadFocus}"]:not([disabled])`)?.focus();
}

function writingNote(text) {
  return h('p', { class: 'writing-note', 'data-testid': 'next-writing' }, h('span', { class: 'dots-anim', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')), text);
}

function endCard(story) {
  return h(
    'div',
    { class: 'end-card', 'data-testid': 'story-end' },
    h('div', { class: 'end-art', 'aria-hidden': 'true' }, '🌟'),
    h('p', { class: 'end-title' }, t('theEnd')),
    h('p', { class: 'end-sub' }, t('theEndSub')),
    h(
      'div',
      { class: 'end-actions' },
      h('a', { class: 'btn btn-primary', href: `#/story/${encodeURIComponent(story.id)}/all`, 'data-testid': 'end-whole-story' }, h('span', { 'aria-hidden': 'true' }, '📜 '), t('wholeStory')),
      h('a', { class: 'btn btn-soft', href: '#/', 'data-testid': 'end-new-story' }, h('span', { 'aria-hidden': 'true' }, '✨ '), t('newStory')),
    ),
    current && current.story === story ? keepPanel(current, 'end') : null,
  );
}

// ---------------------------------------------------------------- share and keep

const FORMATS = ['pdf', 'epub', 'html'];

function keepState(c) {
  if (!c.keep) {
    c.keep = { shareUrl: null, sharing: false, copied: null, downloadOpen: false, downloading: null, downloaded: null };
  }
  return c.keep;
}

/** "Share with the family" and "Download the book", for a finished story (one per place). */
function keepPanel(c, where) {
  if (!c.keepEls) c.keepEls = {};
  let k = c.keepEls[where];
  if (!k || k.lang !== ui.lang) {
    k = buildKeep(c, where);
    c.keepEls[where] = k;
  }
  k.update();
  return k.el;
}

function updateKeep(c) {
  for (const k of Object.values(c.keepEls || {})) k.update();
}

function buildKeep(c, where) {
  const st = keepState(c);
  const id = (x) => `keep-${where}-${x}`;
  const shareLabel = h('span', null, t('share'));
  const shareBtn = h(
    'button',
    { type: 'button', class: 'btn btn-primary keep-btn', 'data-testid': 'share-button', 'aria-controls': id('share'), onclick: () => shareStory(c, where) },
    h('span', { 'aria-hidden': 'true' }, '💌'),
    shareLabel,
  );
  const dlBtn = h(
    'button',
    {
      type: 'button',
      class: 'btn btn-soft keep-btn',
      'data-testid': 'download-button',
      'aria-controls': id('dl'),
      'aria-expanded': 'false',
      onclick: () => {
        st.downloadOpen = !st.downloadOpen;
        updateKeep(c);
      },
    },
    h('span', { 'aria-hidden': 'true' }, '📥'),
    h('span', null, t('download')),
  );
  const link = h('a', { class: 'share-link', 'data-testid': 'share-link', target: '_blank', rel: 'noopener', 'aria-label': t('shareLinkLabel') });
  const copied = h('p', { class: 'share-copied', 'data-testid': 'share-copied', role: 'status' });
  const canShare = typeof navigator.share === 'function';
  const shareBox = h(
    'div',
    { id: id('share'), class: 'share-box', 'data-testid': 'share-panel', hidden: true },
    h('p', { class: 'share-lead' }, t('shareLead')),
    link,
    h(
      'div',
      { class: 'share-actions' },
      h(
        'button',
        { type: 'button', class: 'btn btn-accent btn-small', 'data-testid': 'share-copy', onclick: () => copyShareLink(c, link) },
        h('span', { 'aria-hidden': 'true' }, '📋'),
        h('span', null, t('shareCopy')),
      ),
      canShare
        ? h(
            'button',
            { type: 'button', class: 'btn btn-soft btn-small', 'data-testid': 'share-native', onclick: () => nativeShare(c) },
            h('span', { 'aria-hidden': 'true' }, '📱'),
            h('span', null, t('shareNative')),
          )
        : null,
    ),
    copied,
  );
  const formats = STRINGS[ui.lang].formats;
  const fmtButtons = FORMATS.map((fmt) =>
    h(
      'button',
      { type: 'button', class: `format-btn format-${fmt}`, 'data-testid': `download-${fmt}`, 'data-format': fmt, onclick: () => downloadStory(c, fmt) },
      h('span', { class: 'format-name' }, formats[fmt].name),
      h('span', { class: 'format-hint' }, formats[fmt].hint),
    ),
  );
  const dlBox = h(
    'div',
    { id: id('dl'), class: 'download-box', 'data-testid': 'download-options', hidden: true },
    h('p', { class: 'download-lead', id: id('dl-lead') }, t('downloadChoose')),
    h('div', { class: 'formats', role: 'group', 'aria-labelledby': id('dl-lead') }, ...fmtButtons),
  );
  const done = h('p', { class: 'download-done', 'data-testid': 'download-done', role: 'status', hidden: true });
  dlBox.append(done);
  const el = h(
    'section',
    { class: 'keep-card', 'data-testid': 'keep-panel', 'data-where': where, 'aria-labelledby': id('title') },
    h('h3', { class: 'keep-title', id: id('title') }, t('keepTitle')),
    h('div', { class: 'keep-actions' }, shareBtn, dlBtn),
    shareBox,
    dlBox,
  );
  const update = () => {
    shareBtn.disabled = st.sharing;
    shareBtn.setAttribute('aria-busy', st.sharing ? 'true' : 'false');
    shareBtn.setAttribute('aria-expanded', st.shareUrl ? 'true' : 'false');
    shareLabel.textContent = st.sharing ? t('sharing') : t('share');
    shareBox.hidden = !st.shareUrl;
    if (st.shareUrl && link.getAttribute('href') !== st.shareUrl) {
      link.href = st.shareUrl;
      link.textContent = st.shareUrl;
    }
    copied.hidden = !st.copied;
    copied.dataset.result = st.copied || '';
    copied.textContent = st.copied === 'ok' ? t('shareCopied') : st.copied === 'failed' ? t('shareCopyFailed') : '';
    dlBtn.setAttribute('aria-expanded', st.downloadOpen ? 'true' : 'false');
    dlBox.hidden = !st.downloadOpen;
    done.hidden = !st.downloaded;
    done.textContent = st.downloaded ? t('downloaded', st.downloaded) : '';
    for (const b of fmtButtons) {
      const busy = st.downloading === b.dataset.format;
      b.disabled = Boolean(st.downloading);
      b.setAttribute('aria-busy', busy ? 'true' : 'false');
      b.querySelector('.format-hint').textContent = busy ? t('downloading') : formats[b.dataset.format].hint;
    }
  };
  return { el, update, lang: ui.lang };
}

async function shareStory(c, where) {
  const st = keepState(c);
  if (st.sharing) return;
  if (!st.shareUrl) {
    st.sharing = true;
    updateKeep(c);
    try {
      const { data } = await api.share(c.id, c.token);
      if (!data || typeof data.url !== 'string') throw new ApiError(500, 'internal', '');
      st.shareUrl = new URL(data.url, location.origin).href;
    } catch (err) {
      if (current === c) showToast(errorText(err), { kind: 'error' });
    } finally {
      st.sharing = false;
      updateKeep(c);
    }
    if (!st.shareUrl) return;
    announce(t('shareLead'));
  }
  const box = c.keepEls && c.keepEls[where] ? c.keepEls[where].el.querySelector('.share-box') : null;
  if (box) {
    box.scrollIntoView({ behavior: scrollBehavior(), block: 'center' });
    box.querySelector('[data-testid="share-copy"]')?.focus({ preventScroll: true });
  }
}

async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* no permission: the old way below */
  }
  const area = h('textarea', { readonly: true, class: 'visually-hidden', 'aria-hidden': 'true', tabindex: '-1' });
  area.value = text;
  document.body.append(area);
  const focus = document.activeElement;
  area.select();
  area.setSelectionRange(0, text.length);
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  if (focus && focus.focus) focus.focus({ preventScroll: true });
  return ok;
}

async function copyShareLink(c, link) {
  const st = keepState(c);
  if (!st.shareUrl) return;
  const ok = await copyText(st.shareUrl);
  st.copied = ok ? 'ok' : 'failed';
  updateKeep(c);
  if (!ok) {
    // Select the link so a long press (or Ctrl+C) copies it.
    const range = document.createRange();
    range.selectNodeContents(link);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  announce(ok ? t('shareCopied') : t('shareCopyFailed'));
  clearTimeout(c.copiedTimer);
  c.copiedTimer = setTimeout(() => {
    if (st.copied === 'ok') {
      st.copied = null;
      updateKeep(c);
    }
  }, 4000);
}

async function nativeShare(c) {
  const st = keepState(c);
  if (!st.shareUrl || typeof navigator.share !== 'function') return;
  const title = (c.story && c.story.title) || t('appName');
  try {
    await navigator.share({ title, text: t('shareText', title), url: st.shareUrl });
  } catch {
    /* cancelled, or not allowed: the link and the copy button are still there */
  }
}

function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function downloadStory(c, fmt) {
  const st = keepState(c);
  if (st.downloading) return;
  st.downloading = fmt;
  st.downloaded = null;
  updateKeep(c);
  try {
    const { blob, filename } = await api.exportStory(c.id, c.token, fmt);
    const stem = ((c.story && c.story.title) || 'story').replace(/[\\/:*?"<>|\s]+/g, '-').slice(0, 60) || 'story';
    const name = filename || `${stem}.${fmt}`;
    saveBlob(blob, name);
    st.downloaded = name; // said in the panel (a role=status line), not in a toast
  } catch (err) {
    if (current === c) showToast(errorText(err), { kind: 'error' });
  } finally {
    st.downloading = null;
    updateKeep(c);
  }
}

function renderNav(story) {
  const c = current;
  const last = latestIndex(story);
  $('prev-page').disabled = c.viewPage <= 0;
  $('next-page').disabled = c.viewPage >= last;
  const badge = $('next-page').querySelector('.new-badge');
  badge.hidden = !(c.newPageBadge && c.viewPage < last);
  $('next-page').setAttribute('aria-label', badge.hidden ? t('next') : `${t('next')} · ${t('newPageReady')}`);

  const dots = $('dots');
  const sig = JSON.stringify([story.total, story.pages.map((p) => p.status), c.viewPage, ui.lang]);
  if (dots.dataset.sig === sig) return;
  dots.dataset.sig = sig;
  const items = [];
  const count = Math.max(story.total, story.pages.length);
  for (let i = 0; i < count; i++) {
    const p = story.pages[i];
    const here = i === c.viewPage;
    items.push(
      h(
        'li',
        null,
        h(
          'button',
          {
            type: 'button',
            class: `dot dot-${p ? p.status : 'future'}${here ? ' here' : ''}`,
            'data-testid': 'page-dot',
            'data-page': i,
            disabled: !p,
            'aria-current': here ? 'page' : null,
            'aria-label': t('pageLabel', i + 1),
            onclick: () => setViewPage(i),
          },
          h('span', { class: 'dot-mark', 'aria-hidden': 'true' }),
        ),
      ),
    );
  }
  dots.replaceChildren(...items);
}

function updateReadAloud() {
  const btn = $('read-aloud');
  if (!btn) return;
  const c = current;
  if (!speech.supported || !c || !c.story || c.viewPage == null || !c.story.pages[c.viewPage]) {
    btn.hidden = true;
    return;
  }
  const page = c.story.pages[c.viewPage];
  const key = `${c.id}:${page.index}`;
  const on = speech.key === key;
  btn.hidden = false;
  btn.disabled = !page.text || page.status === 'writing';
  btn.setAttribute('aria-pressed', on ? 'true' : 'false');
  btn.querySelector('.ra-icon').innerHTML = on ? ICONS.stop : ICONS.speaker;
  btn.querySelector('.ra-label').textContent = on ? t('stopReading') : t('readAloud');
}

// ---------------------------------------------------------------- whole story

function renderWholeView() {
  const c = current;
  const problem = c.missing || c.loadError;
  const story = c.story;
  showView('whole', problem ? 'story-error' : !c.loaded && (!story || !story.pages.length) ? 'loading' : 'whole');
  $('back-to-reading').href = `#/story/${encodeURIComponent(c.id)}`;
  if (problem) {
    $('whole-title').textContent = t('appName');
    $('whole-byline').textContent = '';
    renderStoryProblem($('whole-notice'));
    $('whole-list').replaceChildren();
    $('whole-sheet').replaceChildren();
    $('whole-sheet').dataset.sig = '';
    $('whole-keep').replaceChildren();
    $('whole-end').hidden = true;
    return;
  }
  renderHeadFor($('whole-title'), $('whole-byline'), c);
  const notice = $('whole-notice');
  const planning = isPlanning(story);
  if (!story.pages.length || planning) {
    if (notice.dataset.sig !== `${story.status}:${ui.lang}`) {
      notice.replaceChildren(story.status === 'failed' && !planning ? storyFailedCard(story) : planningCard(story));
      notice.dataset.sig = `${story.status}:${ui.lang}`;
    }
  } else {
    notice.replaceChildren();
    notice.dataset.sig = '';
  }
  $('whole-list').hidden = planning;
  renderWholeSheet(story);
  const keep = $('whole-keep');
  if (story.status === 'ended') {
    const el = keepPanel(c, 'whole');
    if (keep.firstChild !== el) keep.replaceChildren(el);
  } else if (keep.firstChild) {
    keep.replaceChildren();
  }
  renderWhole();
}

function renderWhole() {
  const c = current;
  if (!c || !c.story || c.mode !== 'whole') return;
  const story = c.story;
  const list = $('whole-list');
  // Keep one <li> per page and update it in place, so pictures do not reload.
  while (list.children.length > story.pages.length) list.lastElementChild.remove();
  story.pages.forEach((page, i) => {
    let li = list.children[i];
    if (!li) {
      li = h(
        'li',
        { class: 'whole-page', 'data-testid': 'whole-story-page', 'data-page': i },
        h('div', { class: 'whole-picture book-picture' }),
        h(
          'div',
          { class: 'whole-words' },
          h('p', { class: 'whole-num' }),
          h('p', { class: 'whole-text', 'data-testid': 'whole-story-text' }),
          h('div', { class: 'whole-note' }),
          h('div', { class: 'whole-problem' }),
          h('p', { class: 'whole-chosen', hidden: true }),
        ),
      );
      list.append(li);
    }
    li.dataset.status = page.status;
    renderPicture(li.querySelector('.whole-picture'), page, story);
    li.querySelector('.whole-num').textContent = t('pageLabel', i + 1);
    const text = li.querySelector('.whole-text');
    text.lang = storyLang(story);
    if (text.textContent !== page.text) text.textContent = page.text;
    text.toggleAttribute('data-writing', page.status === 'writing');
    renderPageNote(li.querySelector('.whole-note'), page, story);
    renderProblem(li.querySelector('.whole-problem'), page);
    const chosen = chosenText(page);
    const chosenEl = li.querySelector('.whole-chosen');
    chosenEl.hidden = !chosen;
    chosenEl.replaceChildren(...(chosen ? [h('span', { class: 'chosen-label' }, t('youChose')), chosen] : []));
  });
  const end = $('whole-end');
  end.hidden = story.status !== 'ended';
  end.textContent = t('theEndMark');
}

// ------------------------------------------------------------------ routing

function route() {
  const hash = location.hash || '#/';
  const m = hash.match(/^#\/story\/([^/?#]+)(\/all)?\/?$/);
  if (m) {
    const id = decodeURIComponent(m[1]);
    const mode = m[2] ? 'whole' : 'reader';
    if (!current || current.id !== id) openStory(id, mode);
    else {
      current.mode = mode;
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

// ------------------------------------------------------------------ language

function applyI18n() {
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
  if (!current) document.title = t('docTitle');
  if (!starting) $('start-button').querySelector('.btn-label').textContent = t('start');
  updateCount();
}

function setUiLang(lang) {
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

// ------------------------------------------------------------------ wiring

function tickElapsed() {
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
  applyI18n();
  setAge($('age').value);

  $('story-form').addEventListener('submit', startStory);
  $('premise').addEventListener('input', () => {
    updateCount();
    clearPremiseError();
  });
  $('premise').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.metaKey || e.ctrlKey)) startStory(e);
  });
  $('age-minus').addEventListener('click', () => setAge(clampAge($('age').value) - 1));
  $('age-plus').addEventListener('click', () => setAge(clampAge($('age').value) + 1));
  $('age').addEventListener('change', () => setAge($('age').value));
  for (const r of document.querySelectorAll('input[name="language"]')) {
    r.addEventListener('change', () => r.checked && setUiLang(r.value));
  }
  $('ui-lang-toggle').addEventListener('click', () => setUiLang(ui.lang === 'zh' ? 'en' : 'zh'));

  $('prev-page').addEventListener('click', () => current && setViewPage(current.viewPage - 1));
  $('next-page').addEventListener('click', () => current && setViewPage(current.viewPage + 1));
  $('read-aloud').addEventListener('click', () => {
    const c = current;
    if (!c || !c.story) return;
    const page = c.story.pages[c.viewPage];
    if (!page) return;
    const key = `${c.id}:${page.index}`;
    if (speech.key === key) stopSpeaking();
    else speak(key, page.text, c.story.language);
  });
  $('print-story').addEventListener('click', () => window.print());

  document.addEventListener('keydown', (e) => {
    if (!current || current.mode !== 'reader' || e.defaultPrevented) return;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const tag = (e.target && e.target.tagName) || '';
    if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || e.target.isContentEditable) return;
    if (e.key === 'ArrowLeft') {
      setViewPage(current.viewPage - 1);
      e.preventDefault();
    } else if (e.key === 'ArrowRight') {
      setViewPage(current.viewPage + 1);
      e.preventDefault();
    }
  });

  // Another tab changed the library or the language.
  window.addEventListener('storage', (e) => {
    if (e.key === 'storybook.uiLang') setUiLang(loadUiLang());
    else if (!current) render();
  });

  window.addEventListener('hashchange', route);
  setInterval(tickElapsed, 1000);
  route();
}

init();
