// The story as the reader knows it: built from GET /api/stories/{id}, then kept
// up to date by WebSocket events. Applying an event twice changes nothing.

function normImage(img) {
  if (!img) return null;
  return {
    status: img.status || 'pending',
    url: img.url || null,
    error: img.error || null,
    started_at: img.started_at || null,
    // 'character_sheet' | 'text_only' | null, and why it was not drawn from the sheet.
    reference: img.reference || null,
    note: img.note || null,
  };
}

function normSheet(sheet) {
  if (!sheet || typeof sheet !== 'object') return { status: 'pending', url: null, error: null };
  return { status: sheet.status || (sheet.url ? 'ready' : 'pending'), url: sheet.url || null, error: sheet.error || null };
}

/**
 * The writer waits out a rate limit or an outage of the storyteller: why, and until
 * when (epoch ms). `retry_at` is on the server's clock: read now, the wait is never
 * longer than `retry_in`, so a device whose clock runs late still counts down right.
 */
export function normWaiting(w, now = Date.now()) {
  if (!w || typeof w !== 'object') return null;
  const retryIn = Math.max(0, Number(w.retry_in) || 0);
  const at = Date.parse(w.retry_at || '');
  const until = Math.min(now + retryIn * 1000, Number.isFinite(at) ? at : Infinity);
  return {
    reason: w.reason === 'llm_unreachable' ? 'llm_unreachable' : 'llm_busy',
    tries: Number(w.tries) || 0,
    retryIn,
    until,
  };
}

/** Whole seconds until the next try (0: trying now), or null when the page does not wait. */
export function waitingSeconds(waiting, now = Date.now()) {
  if (!waiting) return null;
  const left = Math.ceil((waiting.until - now) / 1000);
  return Math.max(0, Math.min(Math.ceil(waiting.retryIn), left));
}

function normPage(p, i) {
  return {
    index: typeof p.index === 'number' ? p.index : i,
    status: p.status || 'writing',
    text: p.text || '',
    choices: Array.isArray(p.choices) ? p.choices : [],
    chosen: p.chosen && (p.chosen.choice != null || p.chosen.action) ? p.chosen : null,
    error: p.error || null,
    waiting: p.status === 'writing' || !p.status ? normWaiting(p.waiting) : null,
    image: normImage(p.image),
    // A kind sentence when the reader's typed idea was set aside (only in page.text.done).
    note: p.note || null,
    // What the picture shows, in the story's language (written with the page).
    alt: typeof p.alt === 'string' && p.alt.trim() ? p.alt.trim() : null,
    attempt: 0, // text attempt seen in deltas (0: not known yet)
    local: null, // what this device is doing to the page: 'choosing' | 'retrying'
    imageLocal: null, // 'redrawing' | 'load-failed'
  };
}

export function fromSnapshot(data) {
  const pages = Array.isArray(data.pages) ? data.pages.map(normPage) : [];
  pages.sort((a, b) => a.index - b.index);
  return {
    id: data.story_id,
    title: data.title || null,
    status: data.status || 'in_progress',
    premise: data.premise || '',
    age: data.age ?? 6,
    language: data.language === 'en' ? 'en' : 'zh',
    style: data.style || '',
    total: Math.max(1, data.total_pages || 6),
    created_at: data.created_at || null,
    error: data.error || null,
    sheet: normSheet(data.character_sheet),
    pages,
    lastSeq: Number.isFinite(data.last_seq) ? data.last_seq : 0,
  };
}

/**
 * What this device saw that a snapshot does not carry (the notes of page.text.done):
 * kept when a fresh snapshot replaces the story.
 */
export function carryOver(from, to) {
  if (!from || !to || from.id !== to.id) return to;
  for (const page of to.pages) {
    const old = from.pages[page.index];
    if (old && old.note && !page.note && page.status === 'done') page.note = old.note;
  }
  return to;
}

/** A story known from its library entry, before its snapshot arrives: no pages yet. */
export function emptyStory(entry) {
  return fromSnapshot({ ...entry, story_id: entry.id, total_pages: entry.total, pages: [] });
}

export function ensurePage(story, index) {
  while (story.pages.length <= index) {
    story.pages.push(normPage({ index: story.pages.length, status: 'writing' }, story.pages.length));
  }
  return story.pages[index];
}

/**
 * Apply one server message. Returns a small description of what changed
 * ({kind, page}) or null when nothing did.
 */
export function applyEvent(story, ev) {
  const durable = typeof ev.seq === 'number';
  if (durable) {
    if (ev.seq <= story.lastSeq) return null; // already applied
    story.lastSeq = ev.seq;
  }
  const idx = typeof ev.page === 'number' ? ev.page : null;
  const onPage = PAGE_EVENTS[ev.type];
  if (onPage) return idx == null ? null : onPage(story, ensurePage(story, idx), ev, idx);
  const onStory = STORY_EVENTS[ev.type];
  if (onStory) return onStory(story, ev);
  return durable ? { kind: 'other' } : null;
}

/** The reader's event types this page acts on (story-wide, then page by page). */
export function eventTypes() {
  return [...Object.keys(STORY_EVENTS), ...Object.keys(PAGE_EVENTS)];
}

const STORY_EVENTS = {
  'story.outlined': (story, ev) => {
    if (ev.title) story.title = ev.title;
    return { kind: 'title' };
  },
  'story.sheet.done': (story, ev) => {
    story.sheet = { status: 'ready', url: ev.url || null, error: null };
    return { kind: 'sheet' };
  },
  'story.sheet.started': (story) => {
    story.sheet = { status: 'pending', url: null, error: null };
    return { kind: 'sheet' };
  },
  'story.sheet.failed': (story, ev) => {
    story.sheet = { status: 'failed', url: null, error: ev.error || null };
    return { kind: 'sheet' };
  },
  'story.ended': (story) => {
    story.status = 'ended';
    return { kind: 'ended' };
  },
};

/** A failed page being written again: its error goes. */
function writingAgain(page) {
  if (page.status === 'failed') {
    page.status = 'writing';
    page.error = null;
  }
}

function textDelta(story, page, ev, idx) {
  if (typeof ev.delta !== 'string' || page.status === 'done') return null;
  const attempt = Number(ev.attempt) || 0;
  if (attempt < page.attempt) return null; // a late word from an abandoned attempt
  const offset = Math.max(0, Number(ev.offset) || 0);
  let cleared = false;
  if (attempt > page.attempt) {
    // A new attempt starts over: what an older attempt wrote goes away, whatever
    // this delta's offset. (Attempt 0 is a snapshot's text of unknown attempt: the
    // socket starts every connection with the text so far at offset 0.)
    if (page.attempt > 0 || offset === 0) {
      cleared = page.text !== '';
      page.text = '';
    }
    page.attempt = attempt;
  }
  // Missed the start (joined mid-page, or right after a reset): keep what we have
  // rather than show a sentence with a hole; an offset-0 delta or page.text.done
  // fills it in.
  if (offset > page.text.length) return cleared ? { kind: 'reset', page: idx } : null;
  page.text = page.text.slice(0, offset) + ev.delta;
  page.waiting = null; // words arrive: the storyteller answers again
  writingAgain(page);
  return { kind: 'delta', page: idx };
}

/** A page's picture as an event tells it, keeping when its drawing started. */
function pictureOf(page, status, fields = {}) {
  return {
    status,
    url: null,
    error: null,
    started_at: page.image ? page.image.started_at : null,
    reference: null,
    note: null,
    ...fields,
  };
}

const PAGE_EVENTS = {
  'page.started': (story, page, ev, idx) => {
    if (page.status !== 'done') {
      if (page.status === 'failed') page.text = '';
      page.status = 'writing';
      page.error = null;
    }
    page.waiting = null;
    page.local = null;
    if (story.status === 'failed') story.status = 'in_progress';
    return { kind: 'page.started', page: idx };
  },
  'page.text.delta': textDelta,
  'page.text.reset': (story, page, ev, idx) => {
    // The page is written again from the start (its writer crashed or retried): the
    // partial text goes, so two versions are never glued together. Deltas rebuild it
    // from offset 0.
    if (page.status === 'done') return null;
    const attempt = Number(ev.attempt) || 0;
    if (attempt < page.attempt) return null;
    page.attempt = attempt;
    page.text = '';
    writingAgain(page);
    return { kind: 'reset', page: idx };
  },
  'page.text.done': (story, page, ev, idx) => {
    page.status = 'done';
    page.text = typeof ev.text === 'string' ? ev.text : page.text;
    page.choices = Array.isArray(ev.choices) ? ev.choices : [];
    page.note = typeof ev.note === 'string' && ev.note.trim() ? ev.note.trim() : null;
    page.alt = typeof ev.alt === 'string' && ev.alt.trim() ? ev.alt.trim() : page.alt || null;
    page.error = null;
    page.waiting = null;
    page.local = null;
    return { kind: 'page.done', page: idx };
  },
  'page.failed': (story, page, ev, idx) => {
    page.status = 'failed';
    page.error = ev.error || { code: 'llm_failed', message: '' };
    page.waiting = null;
    page.local = null;
    story.status = 'failed'; // as the server records it; page.started puts it back
    return { kind: 'page.failed', page: idx };
  },
  'page.waiting': (story, page, ev, idx) => {
    if (page.status !== 'writing') return null;
    page.waiting = normWaiting(ev);
    return { kind: 'waiting', page: idx };
  },
  'page.resumed': (story, page, ev, idx) => {
    page.waiting = null;
    return { kind: 'waiting', page: idx };
  },
  'page.image.started': (story, page, ev, idx) => {
    page.image = pictureOf(page, 'pending', { started_at: ev.at || new Date().toISOString() });
    page.imageLocal = null;
    return { kind: 'image', page: idx };
  },
  'page.image.done': (story, page, ev, idx) => {
    page.image = pictureOf(page, 'ready', { url: ev.url || null, reference: ev.reference || null, note: ev.note || null });
    page.imageLocal = null;
    return { kind: 'image.ready', page: idx };
  },
  'page.image.failed': (story, page, ev, idx) => {
    page.image = pictureOf(page, 'failed', { error: ev.error || { code: 'image_failed', message: '' } });
    page.imageLocal = null;
    return { kind: 'image', page: idx };
  },
  'page.chosen': (story, page, ev, idx) => {
    page.chosen = { choice: ev.choice ?? null, action: ev.action ?? null };
    page.local = null;
    return { kind: 'chosen', page: idx };
  },
};

/** Text of what was chosen at the end of a page, or null. */
export function chosenText(page) {
  if (!page.chosen) return null;
  if (page.chosen.action) return page.chosen.action;
  const i = page.chosen.choice;
  if (i != null && page.choices[i] != null) return page.choices[i];
  return null;
}

export function donePages(story) {
  return story.pages.filter((p) => p.status === 'done').length;
}

/** The character sheet's picture once it is drawn, or null. */
export function sheetUrl(story) {
  return story && story.sheet && story.sheet.status === 'ready' && story.sheet.url ? story.sheet.url : null;
}

export function coverUrl(story) {
  const p = story.pages.find((pg) => pg.image && pg.image.status === 'ready' && pg.image.url);
  return p ? p.image.url : null;
}
