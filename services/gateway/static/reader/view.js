// The reader screen: one page at a time, its head, notices and page dots.

import { renderAfter, renderProblem } from './after.js';
import { renderChoicesCue } from './cue.js';
import { renderPageSheet, renderPicture, renderPictureNote } from './picture.js';
import { setViewPage } from './session.js';
import { firstPageToShow, firstWaiting, isPlanning, latestIndex, storyLang } from '../decide.js';
import { $, errorText, h, showView, styleLabel, t } from '../dom.js';
import { friendlyError } from '../i18n.js';
import { updateReadAloud } from '../speech.js';
import { session, ui } from '../state.js';
import { removeStoryEntry } from '../store.js';
import { problemCard, waitingNote } from '../widgets.js';

export function storyTitle(story) {
  return story.title || null;
}

export function renderHeadFor(titleEl, bylineEl, c) {
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

export function renderStoryProblem(noticeEl) {
  const c = session.current;
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

export function planningCard(story) {
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

export function storyFailedCard(story) {
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

export function renderReaderView() {
  const c = session.current;
  const story = c.story;
  const problem = c.missing || c.loadError;
  const noPages = !story || story.pages.length === 0;
  let state = 'reading';
  if (problem) state = 'story-error';
  else if (!c.loaded && noPages) state = 'loading';
  showView('reader', state);
  document.body.dataset.storyStatus = story ? story.status : '';
  $('whole-link').href = `#/story/${encodeURIComponent(c.id)}/all`;
  const notice = $('reader-notice');
  const bookShown = !problem && !noPages && !isPlanning(story);
  $('book').hidden = !bookShown;
  $('page-nav').hidden = !bookShown;
  if (problem) {
    $('story-title').textContent = t('appName');
    $('reader-byline').textContent = '';
    $('whole-link').hidden = true;
    renderStoryProblem(notice);
    return;
  }
  renderHeadFor($('story-title'), $('reader-byline'), c);
  $('whole-link').hidden = !bookShown;
  if (!bookShown) {
    renderNotice(notice, story);
    return;
  }
  notice.replaceChildren();
  notice.dataset.sig = '';
  renderBook(c, story);
}

/** No page to show yet: the story is being planned, or failed before its first page. */
function renderNotice(notice, story) {
  const waiting = firstWaiting(story);
  const failed = story.status === 'failed';
  const sig = failed ? `failed:${ui.lang}` : `planning:${ui.lang}:${waiting ? `${waiting.reason}:${waiting.until}` : ''}`;
  if (notice.dataset.sig === sig) return;
  notice.replaceChildren(failed ? storyFailedCard(story) : planningCard(story));
  notice.dataset.sig = sig;
}

function renderBook(c, story) {
  // Reopened from this visit's memory: the story is already here, so choose the page now
  // (the same rule as after loading it), not only once the GET answers.
  if (c.viewPage == null) c.viewPage = firstPageToShow(story);
  if (c.viewPage > latestIndex(story)) c.viewPage = latestIndex(story);
  const page = story.pages[c.viewPage];
  const book = $('book');
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
  renderChoicesCue($('page-after').dataset.state);
  renderNav(story);
  updateReadAloud();
}

export function renderPageText(page) {
  const el = $('page-text');
  if (session.current && session.current.story) el.lang = storyLang(session.current.story);
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
export function renderPageNote(box, page, story) {
  const note = page.status === 'done' && page.note ? page.note : null;
  const sig = JSON.stringify([note, page.index, story.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren(...(note ? [pageNote(note, story)] : []));
}

export function pageNote(note, story) {
  return h(
    'p',
    { class: 'page-note', 'data-testid': 'page-note', lang: storyLang(story) },
    h('span', { class: 'page-note-icon', 'aria-hidden': 'true' }, '🌈'),
    h('span', { class: 'page-note-text' }, note),
  );
}

export function renderNav(story) {
  const c = session.current;
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
