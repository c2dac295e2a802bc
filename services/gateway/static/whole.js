// The whole story on one screen, page after page.

import { isPlanning, storyLang } from './decide.js';
import { $, h, showView, t } from './dom.js';
import { renderProblem } from './reader/after.js';
import { renderPicture, renderWholeSheet } from './reader/picture.js';
import { planningCard, renderHeadFor, renderPageNote, renderStoryProblem, storyFailedCard } from './reader/view.js';
import { keepPanel } from './share.js';
import { session, ui } from './state.js';
import { chosenText } from './story.js';

export function renderWholeView() {
  const c = session.current;
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

export function renderWhole() {
  const c = session.current;
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
