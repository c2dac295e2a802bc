// The open story: loading it, its socket, and which page the reader looks at.

import { wireChoicesCue } from './cue.js';
import { renderPageText } from './view.js';
import { api, ApiError, StorySocket } from '../api.js';
import { awaitsChoice, firstPageToShow, isPlanning, latestIndex } from '../decide.js';
import { $, announce, errorText, noteServerDate, scrollBehavior, showToast, t } from '../dom.js';
import { friendlyError } from '../i18n.js';
import { stopSpeaking, toggleReadAloud } from '../speech.js';
import { memory, render, session, ui } from '../state.js';
import { getStoryEntry, updateStoryEntry } from '../store.js';
import { applyEvent, carryOver, coverUrl, donePages, emptyStory, fromSnapshot } from '../story.js';
import { renderWhole } from '../whole.js';

export function leaveStory() {
  if (!session.current) return;
  if (session.current.socket) session.current.socket.close();
  session.current.socket = null;
  stopSpeaking();
  session.current = null;
  setBanner(null);
}

export function syncLibrary(c) {
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
    awaitingChoice: awaitsChoice(s),
  });
}

export function openStory(id, mode) {
  leaveStory();
  const entry = getStoryEntry(id);
  if (!entry) {
    session.current = { id, missing: true, mode, story: null };
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
  session.current = c;
  memory.set(id, c.story);
  render();
  loadStory(c);
}

/**
 * The story as the server has it, merged into what this page holds (unless what the page
 * holds is newer). False when the reader has left the story meanwhile.
 */
async function fetchStory(c, { keepNewer = false } = {}) {
  const { data, date } = await api.getStory(c.id, c.token);
  if (session.current !== c) return false;
  noteServerDate(date);
  const fresh = fromSnapshot(data);
  if (keepNewer && fresh.lastSeq < c.story.lastSeq) return false;
  if (!fresh.id) fresh.id = c.id;
  c.story = carryOver(c.story, fresh);
  memory.set(c.id, c.story);
  return true;
}

export async function loadStory(c) {
  try {
    if (!(await fetchStory(c))) return;
    c.loaded = true;
  } catch (err) {
    if (session.current !== c) return;
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
export async function refreshStory(c) {
  try {
    if (!(await fetchStory(c, { keepNewer: true }))) return;
    syncLibrary(c);
    render();
  } catch (err) {
    if (session.current !== c) return;
    if (err instanceof ApiError && [401, 403, 404].includes(err.status)) {
      c.loadError = err;
      if (c.socket) c.socket.close();
      c.socket = null;
      render();
    }
  }
}

export function connect(c) {
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

export function setBanner(kind) {
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

export function onSocketState(c, state) {
  if (session.current !== c) return;
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
      if (session.current === c && !c.loadError && !c.socket) setTimeout(() => session.current === c && connect(c), 5000);
    });
  }
}

export function onSocketMessage(c, msg) {
  if (session.current !== c) return;
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

export function onNewPage(c, index, wasLatest) {
  if (c.viewPage == null || wasLatest || c.focusNext) {
    const focus = c.focusNext;
    c.focusNext = false;
    setViewPage(index, { focus, scroll: focus });
  } else {
    c.newPageBadge = true;
  }
}

export function setViewPage(index, { focus = false, scroll = false } = {}) {
  const c = session.current;
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

/** The live page object (handlers must not hold on to one: a refresh replaces them). */
export function livePage(c, index) {
  return c && c.story ? c.story.pages[index] || null : null;
}

/** Turning pages with the buttons and the arrow keys, and reading the page aloud. */
export function wireReader() {
  const turn = (by) => session.current && setViewPage(session.current.viewPage + by);
  $('prev-page').addEventListener('click', () => turn(-1));
  $('next-page').addEventListener('click', () => turn(1));
  $('read-aloud').addEventListener('click', toggleReadAloud);
  wireChoicesCue();
  document.addEventListener('keydown', (e) => {
    if (!session.current || session.current.mode !== 'reader' || e.defaultPrevented) return;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    const tag = (e.target && e.target.tagName) || '';
    if (['INPUT', 'TEXTAREA', 'SELECT'].includes(tag) || e.target.isContentEditable) return;
    const by = { ArrowLeft: -1, ArrowRight: 1 }[e.key];
    if (!by) return;
    turn(by);
    e.preventDefault();
  });
}
