// What the reader asks of the server from a page: a choice, a retry, a new drawing.

import { livePage, refreshStory } from './session.js';
import { api, ApiError } from '../api.js';
import { $, announce, errorText, scrollBehavior, showToast } from '../dom.js';
import { render, session } from '../state.js';
import { refusalMessage } from '../widgets.js';

export async function choose(index, { choice = null, action = null }) {
  const c = session.current;
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
    if (session.current !== c) return;
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

/**
 * Ask the server to do something to a page, marking it on the page (`field` = `mark`)
 * until the socket tells what happened. A 409: the page moved on meanwhile, so it is
 * read again (and said, unless `quietConflict`: a drawing already under way).
 */
async function pageRequest(index, field, mark, call, { quietConflict = false } = {}) {
  const c = session.current;
  let page = livePage(c, index);
  if (!page || page[field] === mark) return;
  page[field] = mark;
  render();
  try {
    await call(c);
  } catch (err) {
    if (session.current !== c) return;
    page = livePage(c, index);
    if (page) page[field] = null;
    const conflict = err instanceof ApiError && err.status === 409;
    if (!(conflict && quietConflict)) showToast(errorText(err), { kind: 'error' });
    render();
    if (conflict) refreshStory(c);
  }
}

export function retryPage(index) {
  return pageRequest(index, 'local', 'retrying', (c) => api.retryPage(c.id, c.token, index));
}

export function redrawImage(index) {
  return pageRequest(index, 'imageLocal', 'redrawing', (c) => api.redrawImage(c.id, c.token, index), {
    quietConflict: true,
  });
}

export async function redrawSheet() {
  const c = session.current;
  if (!c || !c.story || c.story.sheetLocal === 'asking') return;
  c.story.sheetLocal = 'asking';
  render();
  try {
    await api.redrawSheet(c.id, c.token);
    if (session.current === c && c.story.sheet.status === 'failed') c.story.sheet = { status: 'pending', url: null, error: null };
  } catch (err) {
    if (session.current !== c) return;
    if (err instanceof ApiError && err.status === 409) refreshStory(c);
    else showToast(errorText(err), { kind: 'error' });
  }
  if (session.current === c) c.story.sheetLocal = null;
  render();
}
