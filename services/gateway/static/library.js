// The device's shelf of stories, refreshed from the server when it answers.

import { api } from './api.js';
import { libraryStatus } from './decide.js';
import { $, h, showToast, t } from './dom.js';
import { STRINGS } from './i18n.js';
import { render, session, ui } from './state.js';
import { listStories, mergeServerLibrary, removeStoryEntry, saveStoryEntry } from './store.js';

/**
 * Refresh the device's library from the server (titles, status, pages, covers of the
 * stories whose tokens it holds). Offline or refused: the device's own copy stands.
 */
export async function syncLibraryFromServer() {
  if (session.librarySyncing) return;
  const pairs = listStories()
    .filter((s) => s.id.length <= 64 && s.token.length <= 128)
    .map((s) => ({ story_id: s.id, token: s.token }));
  if (!pairs.length) return;
  session.librarySyncing = true;
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
    session.librarySyncing = false;
  }
  if (changed && !session.current) render();
  document.body.dataset.librarySync = ok ? 'done' : 'failed';
}

export function formatDate(iso) {
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

export function renderLibrary(list, entries) {
  // Re-rendered when the server's summaries arrive: keep the focus where it was.
  const active = list.contains(document.activeElement) ? document.activeElement : null;
  const focusId = active ? active.closest('[data-story-id]')?.dataset.storyId : null;
  const focusTestid = active ? active.dataset.testid : null;
  list.replaceChildren(
    ...entries.map((s, i) => {
      const title = s.title || s.premise || t('untitled');
      const status = libraryStatus(s);
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

export function removeFromLibrary(id) {
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
