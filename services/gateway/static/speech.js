// Read-aloud of the page shown: its sentences one by one, each marked while it is read,
// then "what happens next?" and the choices the reader can pick.

import { $, t } from './dom.js';
import { STRINGS } from './i18n.js';
import { ICONS } from './icons.js';
import { canSpeak, narrate, sentenceSpans } from './narrator.js';
import { sentences } from './sentences.js';
import { session } from './state.js';

export const speech = {
  supported: canSpeak(),
  key: null, // `${storyId}:${page}` being read
  stop: null,
};

if (speech.supported) {
  // Voices load lazily in some browsers.
  window.speechSynthesis.getVoices();
}

export function stopSpeaking() {
  const stop = speech.stop;
  speech.key = null;
  speech.stop = null;
  if (stop) stop();
  updateReadAloud();
}

/** What is read, in order: the page's sentences, then the choices (in the story's language). */
function readingItems(page, story) {
  const items = sentenceSpans($('page-text'), sentences(page.text)).map((el) => ({ text: el.textContent, el }));
  const choices = [...$('page-after').querySelectorAll('[data-testid="choice-button"]:not([disabled])')];
  if (choices.length) {
    const words = STRINGS[story.language === 'en' ? 'en' : 'zh'];
    items.push({ text: words.whatNext, el: $('what-next') });
    choices.forEach((b, i) => items.push({ text: `${i + 1}. ${b.querySelector('.choice-text').textContent}`, el: b }));
  }
  return items;
}

/** The read-aloud button: read the page shown, or stop. */
export function toggleReadAloud() {
  const c = session.current;
  const page = c && c.story ? c.story.pages[c.viewPage] : null;
  if (!page || !speech.supported) return;
  const key = `${c.id}:${page.index}`;
  const again = speech.key !== key;
  stopSpeaking();
  if (!again || !page.text) return;
  speech.key = key;
  speech.stop = narrate(readingItems(page, c.story), c.story.language, () => {
    if (speech.key !== key) return;
    speech.key = null;
    speech.stop = null;
    updateReadAloud();
  });
  updateReadAloud();
}

export function updateReadAloud() {
  const btn = $('read-aloud');
  if (!btn) return;
  const c = session.current;
  if (!speech.supported || !c || !c.story || c.viewPage == null || !c.story.pages[c.viewPage]) {
    btn.hidden = true;
    return;
  }
  const page = c.story.pages[c.viewPage];
  const on = speech.key === `${c.id}:${page.index}`;
  btn.hidden = false;
  btn.disabled = !page.text || page.status === 'writing';
  btn.setAttribute('aria-pressed', on ? 'true' : 'false');
  btn.querySelector('.ra-icon').innerHTML = on ? ICONS.stop : ICONS.speaker;
  btn.querySelector('.ra-label').textContent = on ? t('stopReading') : t('readAloud');
}
