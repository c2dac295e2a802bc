// What this device remembers: the UI language and a small library of its stories.
// The story token lives here (localStorage) and never in the URL.

const LIB_KEY = 'storybook.library.v1';
const LANG_KEY = 'storybook.uiLang';

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(key);
    return raw == null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* private mode or full: the app still works for this visit */
  }
}

/** The parent's choice once made; on a first visit, the browser's own languages. */
export function loadUiLang(languages = globalThis.navigator ? navigator.languages || [navigator.language] : []) {
  const saved = read(LANG_KEY, null);
  if (saved === 'zh' || saved === 'en') return saved;
  return browserLang(languages);
}

/** Chinese for a browser that prefers zh-*, English otherwise (the first language decides). */
export function browserLang(languages) {
  const first = [...(languages || [])].find((l) => typeof l === 'string' && l.trim());
  if (!first) return 'zh';
  return first.trim().toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

export function saveUiLang(lang) {
  write(LANG_KEY, lang);
}

/** @returns {Array<{id,token,title,premise,language,style,age,status,pages,total,created_at,cover}>} */
export function listStories() {
  const items = read(LIB_KEY, []);
  if (!Array.isArray(items)) return [];
  return items
    .filter((s) => s && typeof s.id === 'string' && typeof s.token === 'string')
    .sort((a, b) => when(b) - when(a));
}

// The server writes "…+00:00", this device "…Z": compare instants, not strings.
function when(entry) {
  const t = Date.parse(entry.created_at || '');
  return Number.isNaN(t) ? 0 : t;
}

export function getStoryEntry(id) {
  return listStories().find((s) => s.id === id) || null;
}

export function saveStoryEntry(entry) {
  const items = listStories().filter((s) => s.id !== entry.id);
  items.push(entry);
  write(LIB_KEY, items);
}

export function updateStoryEntry(id, patch) {
  const items = listStories();
  const item = items.find((s) => s.id === id);
  if (!item) return null;
  let changed = false;
  for (const [k, v] of Object.entries(patch)) {
    if (v !== undefined && item[k] !== v) {
      item[k] = v;
      changed = true;
    }
  }
  if (changed) write(LIB_KEY, items);
  return item;
}

export function removeStoryEntry(id) {
  const items = listStories();
  const removed = items.find((s) => s.id === id) || null;
  write(
    LIB_KEY,
    items.filter((s) => s.id !== id),
  );
  return removed;
}

/**
 * Refresh this device's entries from the server's summaries (POST /api/library).
 * Only what the server knows better changes; stories it did not return stay as they
 * are (offline copy, or a token the server no longer knows: opening it says so).
 * @returns {boolean} whether anything changed
 */
export function mergeServerLibrary(summaries) {
  if (!Array.isArray(summaries) || !summaries.length) return false;
  const items = listStories();
  let changed = false;
  for (const s of summaries) {
    if (!s || typeof s.story_id !== 'string') continue;
    const item = items.find((e) => e.id === s.story_id);
    if (!item) continue;
    const patch = {
      title: s.title || undefined,
      status: ['in_progress', 'ended', 'failed'].includes(s.status) ? s.status : undefined,
      language: s.language === 'en' || s.language === 'zh' ? s.language : undefined,
      pages: Number.isFinite(s.pages) ? s.pages : undefined,
      cover: s.cover_url || undefined,
      awaitingChoice: typeof s.awaiting_choice === 'boolean' ? s.awaiting_choice : undefined,
      created_at: s.created_at || undefined,
    };
    for (const [k, v] of Object.entries(patch)) {
      if (v !== undefined && item[k] !== v) {
        item[k] = v;
        changed = true;
      }
    }
  }
  if (changed) write(LIB_KEY, items);
  return changed;
}
