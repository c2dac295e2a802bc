// Read-aloud through the browser's speech synthesis.

import { $, t } from './dom.js';
import { ICONS } from './icons.js';
import { session } from './state.js';

export const speech = {
  supported:
    'speechSynthesis' in window && typeof window.SpeechSynthesisUtterance === 'function',
  key: null, // `${storyId}:${page}` being read
};

export function pickVoice(lang) {
  const voices = window.speechSynthesis.getVoices() || [];
  const norm = (v) => (v.lang || '').replace('_', '-').toLowerCase();
  if (lang === 'zh') {
    return (
      voices.find((v) => norm(v) === 'zh-cn') ||
      voices.find((v) => norm(v).startsWith('zh-hans')) ||
      voices.find((v) => norm(v).startsWith('zh')) ||
      null
    );
  }
  return (
    voices.find((v) => norm(v) === 'en-us') || voices.find((v) => norm(v).startsWith('en')) || null
  );
}

export function stopSpeaking() {
  if (!speech.supported) return;
  speech.key = null;
  try {
    window.speechSynthesis.cancel();
  } catch {
    /* ignore */
  }
  updateReadAloud();
}

export function speak(key, text, lang) {
  if (!speech.supported || !text) return;
  window.speechSynthesis.cancel();
  const u = new SpeechSynthesisUtterance(text);
  u.lang = lang === 'en' ? 'en-US' : 'zh-CN';
  const voice = pickVoice(lang);
  if (voice) u.voice = voice;
  u.rate = 0.9;
  u.pitch = 1.05;
  u.onend = u.onerror = () => {
    if (speech.key === key) {
      speech.key = null;
      updateReadAloud();
    }
  };
  speech.key = key;
  window.speechSynthesis.speak(u);
  updateReadAloud();
}

if (speech.supported) {
  // Voices load lazily in some browsers.
  window.speechSynthesis.getVoices();
  window.speechSynthesis.addEventListener?.('voiceschanged', () => {});
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
  const key = `${c.id}:${page.index}`;
  const on = speech.key === key;
  btn.hidden = false;
  btn.disabled = !page.text || page.status === 'writing';
  btn.setAttribute('aria-pressed', on ? 'true' : 'false');
  btn.querySelector('.ra-icon').innerHTML = on ? ICONS.stop : ICONS.speaker;
  btn.querySelector('.ra-label').textContent = on ? t('stopReading') : t('readAloud');
}

/** The read-aloud button: read the page shown, or stop. */
export function toggleReadAloud() {
  const c = session.current;
  if (!c || !c.story) return;
  const page = c.story.pages[c.viewPage];
  if (!page) return;
  const key = `${c.id}:${page.index}`;
  if (speech.key === key) stopSpeaking();
  else speak(key, page.text, c.story.language);
}
