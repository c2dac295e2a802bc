// Under a page's words: what happens next (choices, own idea), a failed page, the end.

import { choose, retryPage } from './actions.js';
import { livePage, setViewPage } from './session.js';
import { afterState, canChoose, CHOICE_TINTS, latestIndex, MAX_ACTION, storyLang } from '../decide.js';
import { $, h, t } from '../dom.js';
import { startWith } from '../home.js';
import { friendlyError } from '../i18n.js';
import { keepPanel } from '../share.js';
import { render, session, ui } from '../state.js';
import { chosenText } from '../story.js';
import { kindHint, refusalMessage, waitingNote, writingNote } from '../widgets.js';

export function renderProblem(box, page) {
  const sig = JSON.stringify([page.status, page.error, page.local, ui.lang, page.index, session.current && session.current.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  if (page.status !== 'failed') box.replaceChildren();
  else if (page.error && page.error.code === 'unsuitable_idea') box.replaceChildren(refusalCard(page));
  else box.replaceChildren(pageFailedAlert(page));
}

/**
 * The premise was judged unsuitable: no retry (it would be refused again), a kind word
 * and a new story instead.
 */
function refusalCard(page) {
  const story = session.current && session.current.story;
  return h(
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
  );
}

function pageFailedAlert(page) {
  const retrying = page.local === 'retrying';
  return h(
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
  );
}

export function renderAfter(box, page, story) {
  const sig = JSON.stringify([
    page.index, page.status, page.choices, page.chosen, page.local, page.pendingChoice, page.kindHint,
    latestIndex(story), story.status, ui.lang, story.id,
    page.waiting ? [page.waiting.reason, page.waiting.until] : null,
  ]);
  if (box.dataset.sig === sig) return;
  // Keep what the reader is typing if the box is rebuilt.
  const typed = box.querySelector('#action-input')?.value;
  const hadFocus = box.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
  box.dataset.sig = sig;
  const state = afterState(page, story);
  box.dataset.state = state || '';
  box.replaceChildren(...(state ? AFTER[state](page, story, typed) : []));
  if (hadFocus) box.querySelector(`[data-testid="${hadFocus}"]:not([disabled])`)?.focus();
}

const chosenNote = (page) =>
  h('p', { class: 'chosen-note', 'data-testid': 'chosen-note' }, h('span', { class: 'chosen-label' }, t('youChose')), chosenText(page));

const AFTER = {
  writing: () => [writingNote(t('writing'), null)],
  waiting: (page) => [waitingNote(page.waiting)],
  'chosen-next': (page) => [
    chosenNote(page),
    h(
      'button',
      { type: 'button', class: 'btn btn-primary', 'data-testid': 'go-next', onclick: () => setViewPage(page.index + 1, { focus: true, scroll: true }) },
      t('goNext'),
      h('span', { 'aria-hidden': 'true' }, ' →'),
    ),
  ],
  'chosen-writing': (page) => [chosenNote(page), writingNote(t('nextWriting'))],
  chosen: (page) => [chosenNote(page)],
  end: (page, story) => [endCard(story)],
  'ending-written': () => [writingNote(t('waitEnding'))],
  choices: (page, story, typed) => [whatNext(page, story, typed)],
};

/** The choices and the reader's own idea, under one heading. */
function whatNext(page, story, typed) {
  const open = canChoose(page, story);
  const choosing = page.local === 'choosing';
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
          disabled: !open,
          'aria-busy': picked ? 'true' : 'false',
          onclick: () => choose(page.index, { choice: i }),
        },
        h('span', { class: 'choice-num', 'aria-hidden': 'true' }, String(i + 1)),
        h('span', { class: 'choice-text', lang: storyLang(story) }, text),
        picked ? h('span', { class: 'choice-wait' }, t('sending')) : null,
      ),
    );
  });
  return h(
    'div',
    { class: 'what-next', id: 'what-next-box', 'data-testid': 'what-next' },
    h('h3', { id: 'what-next', class: 'what-next-title' }, t('whatNext')),
    group,
    ownIdeaForm(page, story, open, typed),
  );
}

function ownIdeaForm(page, story, open, typed) {
  const pickedAction = page.local === 'choosing' && page.pendingChoice && page.pendingChoice.action != null;
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
    disabled: !open,
  });
  const err = h('p', { id: 'action-error', class: 'field-error', 'data-testid': 'action-error', hidden: true });
  input.addEventListener('input', () => {
    err.hidden = true;
    input.removeAttribute('aria-invalid');
  });
  if (typed) input.value = typed;
  else if (pickedAction) input.value = page.pendingChoice.action;
  const submit = (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (text) {
      choose(page.index, { action: text.slice(0, MAX_ACTION) });
      return;
    }
    err.textContent = t('ownIdeaEmpty');
    err.hidden = false;
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  };
  return h(
    'form',
    { class: 'own-idea', 'data-testid': 'action-form', novalidate: true, onsubmit: submit },
    h('label', { for: 'action-input', class: 'field-label small' }, t('ownIdeaLabel')),
    h(
      'div',
      { class: 'own-idea-row' },
      input,
      h(
        'button',
        { type: 'submit', class: 'btn btn-primary', 'data-testid': 'action-send', disabled: !open, 'aria-busy': pickedAction ? 'true' : 'false' },
        pickedAction ? t('sending') : t('send'),
      ),
    ),
    err,
    page.kindHint ? actionHint(page, story, input) : null,
  );
}

/** A typed idea was gently refused: the kind sentence, and its own idea to use instead. */
function actionHint(page, story, input) {
  return kindHint(page.kindHint, {
    testid: 'action-hint',
    lang: storyLang(story),
    onUse: (idea) => {
      const live = livePage(session.current, page.index);
      input.value = idea;
      if (live) live.kindHint = null;
      render();
      $('action-input')?.focus();
    },
  });
}

export function endCard(story) {
  const c = session.current;
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
    c && c.story === story ? keepPanel(c, 'end') : null,
  );
}
