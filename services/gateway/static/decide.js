// Pure decisions of the page: what a story, a page or a picture shows in each state.
// No DOM and no shared state here, so `node --test` checks them (tests/unit/js).

import { chosenText } from './story.js';

export const MAX_PREMISE = 500;
export const MAX_ACTION = 300;
export const MIN_AGE = 3;
export const MAX_AGE = 12;

export function latestIndex(story) {
  return story.pages.length - 1;
}

/**
 * Nothing to read yet: the story machine is still planning (the outline). The first page
 * counts as started from the moment the story is created, so "no pages" alone is not it.
 */
export function isPlanning(story) {
  if (!story) return false;
  if (story.pages.length === 0) return story.status !== 'failed';
  const first = story.pages[0];
  return story.pages.length === 1 && !story.title && first.status === 'writing' && !first.text;
}

/** Where a story opens: a finished one at its first page, one in progress where it is being written. */
export function firstPageToShow(story) {
  return story.status === 'ended' ? 0 : Math.max(0, latestIndex(story));
}

export const firstWaiting = (story) => (story && story.pages[0] ? story.pages[0].waiting : null);

export const storyLang = (story) => (story && story.language === 'en' ? 'en' : 'zh-CN');

export function clampAge(v) {
  const n = Math.round(Number(v));
  if (!Number.isFinite(n)) return 6;
  return Math.max(MIN_AGE, Math.min(MAX_AGE, n));
}

/** A shelf entry's state, as honest as the device knows: 'choose' means the story waits for the reader. */
export function libraryStatus(entry) {
  const status = entry.status || 'in_progress';
  return status === 'in_progress' && entry.awaitingChoice ? 'choose' : status;
}

/** Does the story wait for the reader's choice (its latest page done, nothing chosen)? */
export function awaitsChoice(story) {
  const latest = story.pages[story.pages.length - 1];
  return Boolean(story.status === 'in_progress' && latest && latest.status === 'done' && latest.choices.length && !chosenText(latest));
}

export const CHOICE_TINTS = ['sun', 'leaf', 'sky', 'berry'];

/**
 * What a page's picture box shows: 'ready' | 'load-failed' | 'failed' | 'redrawing' |
 * 'drawing' (the timer runs) | 'queued' | 'resting' (nothing will be drawn) | 'waiting'.
 */
export function pictureState(page) {
  const img = page.image;
  if (page.imageLocal === 'redrawing') return 'redrawing';
  if (img && img.status === 'ready' && img.url) return page.imageLocal === 'load-failed' ? 'load-failed' : 'ready';
  if (img && img.status === 'failed') return 'failed';
  if (page.status === 'failed' && page.error && page.error.code === 'unsuitable_idea') return 'resting';
  if (img && img.status === 'pending' && img.started_at) return 'drawing';
  if (img && img.status === 'none') return 'resting';
  if (img || page.status === 'done') return 'queued';
  return 'waiting';
}

/** A picture's alt text: the storyteller's own description of it, else the fallback. */
export function pictureAlt(page, fallback) {
  const alt = typeof page.alt === 'string' ? page.alt.trim() : '';
  return alt || fallback;
}

/** After the characters' sheet failed, the latest page offers to draw it again. */
export function sheetOffer(page, story) {
  const sheetState = story.sheet ? story.sheet.status : 'pending';
  return page.index === latestIndex(story) && (sheetState === 'failed' || story.sheetLocal === 'asking');
}

/**
 * What goes under a page's words: 'writing' | 'waiting' (the storyteller waits out a
 * limit) | 'chosen-next' (turn the page) | 'chosen-writing' (the next page is being
 * written) | 'chosen' | 'choices' | 'end' | 'ending-written' | null (nothing).
 */
export function afterState(page, story) {
  if (page.status === 'writing') return page.waiting ? 'waiting' : 'writing';
  if (page.status !== 'done') return null;
  if (chosenText(page)) {
    if (page.index < latestIndex(story)) return 'chosen-next';
    return story.status === 'in_progress' ? 'chosen-writing' : 'chosen';
  }
  if (page.choices.length === 0) {
    if (story.status === 'ended') return 'end';
    return page.index >= story.total - 1 ? 'ending-written' : null;
  }
  return 'choices';
}

/** The reader may choose on the latest page of a story in progress, one choice at a time. */
export function canChoose(page, story) {
  return page.index === latestIndex(story) && story.status === 'in_progress' && page.local !== 'choosing';
}
