// The page's shared state, in one place: every screen reads and changes it here.
//
// session.current = {
//   id, token, story, loaded, loadError, missing, mode: 'reader'|'whole',
//   viewPage, socket, conn, wasDown, focusNext, newPageBadge, keep, keepEls, sheetOpen
// } while a story is open, else null.

import { loadUiLang } from './store.js';

/** The interface language ('zh' | 'en'). */
export const ui = { lang: loadUiLang() };

export const session = {
  current: null,
  /** The screen shown last (focus moves to a new screen's heading). */
  lastView: null,
  /** Server clock vs ours, from the Date header of the last GET (ms; serverNow = Date.now() - offset). */
  serverOffset: 0,
  /** A new story is being asked for (the start button waits). */
  starting: false,
  librarySyncing: false,
};

/** Story id -> the story as seen this visit (keeps lastSeq across screens). */
export const memory = new Map();

/** What the new-story form holds besides its inputs. */
export const form = {
  style: 'watercolor',
  /** The hero's picture as the page will send it (a JPEG data URL), or null. */
  heroPicture: null,
};

// Screens re-render through this hook, so they need not import the router (app.js).
let renderer = () => {};
export function setRenderer(fn) {
  renderer = fn;
}
export function render() {
  renderer();
}
