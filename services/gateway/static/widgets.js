// Small pieces several screens share: kind hints, problem cards, waiting notes.

import { h, t } from './dom.js';
import { STRINGS, suggestedIdea } from './i18n.js';
import { ui } from './state.js';
import { waitingSeconds } from './story.js';

/** The server's kind sentence for a refused idea (ours when it sent none). */
export function refusalMessage(err) {
  const msg = err && err.message && err.message !== err.code ? err.message : '';
  return msg || STRINGS[ui.lang].errors.unsuitable_idea;
}

/** A gentle hint (not an error): the kind sentence, and its idea as a chip to tap. */
export function kindHint(message, { testid = 'kind-hint', onUse = null, lang = null } = {}) {
  const idea = suggestedIdea(message);
  return h(
    'div',
    { class: 'kind-hint', 'data-testid': testid },
    h('span', { class: 'kind-hint-icon', 'aria-hidden': 'true' }, '🌱'),
    h(
      'div',
      { class: 'kind-hint-body' },
      h('p', { class: 'kind-hint-text', 'data-testid': 'kind-hint-text', lang }, message),
      idea && onUse
        ? h(
            'div',
            { class: 'kind-hint-try' },
            h('span', { class: 'kind-hint-label', 'aria-hidden': 'true' }, t('ideaTry')),
            h(
              'button',
              {
                type: 'button',
                class: 'chip chip-1 idea-chip',
                'data-testid': 'idea-chip',
                'aria-label': t('useIdea', idea),
                lang,
                onclick: () => onUse(idea),
              },
              h('span', { class: 'idea-chip-icon', 'aria-hidden': 'true' }, '✨'),
              h('span', null, idea),
            ),
          )
        : null,
    ),
  );
}

export function problemCard({ icon = '🙈', message, hint, buttons = [] }) {
  return h(
    'div',
    { class: 'notice card notice-problem', role: 'alert' },
    h('span', { class: 'notice-icon', 'aria-hidden': 'true' }, icon),
    h('p', { class: 'notice-main', 'data-testid': 'error-message', 'data-kind': 'story' }, message),
    hint ? h('p', { class: 'notice-hint' }, hint) : null,
    buttons.length ? h('div', { class: 'notice-actions' }, ...buttons) : null,
  );
}

/** The storyteller waits out a rate limit or an outage: one calm sentence, counting down. */
export function waitingText(reason, seconds) {
  return t(reason === 'llm_unreachable' ? 'waitingUnreachable' : 'waitingBusy', seconds);
}

export function waitingNote(waiting) {
  return h(
    'p',
    {
      class: 'waiting-note',
      'data-testid': 'page-waiting',
      'data-waiting-reason': waiting.reason,
      'data-waiting-until': String(waiting.until),
      'data-waiting-in': String(waiting.retryIn),
    },
    h('span', { class: 'waiting-note-icon', 'aria-hidden': 'true' }, '⏳'),
    h('span', { class: 'waiting-note-text' }, waitingText(waiting.reason, waitingSeconds(waiting))),
  );
}

export function writingNote(text, testid = 'next-writing') {
  return h('p', { class: 'writing-note', 'data-testid': testid }, h('span', { class: 'dots-anim', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')), text);
}
