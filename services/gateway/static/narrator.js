// Reading aloud with the browser's speech synthesis, one sentence at a time, marking the
// element being read (class "reading") so a child can follow along. Used by the app and
// the share page.

export const canSpeak = () =>
  typeof window !== 'undefined' && 'speechSynthesis' in window && typeof window.SpeechSynthesisUtterance === 'function';

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
  return voices.find((v) => norm(v) === 'en-us') || voices.find((v) => norm(v).startsWith('en')) || null;
}

/**
 * Read `items` ([{text, el}]) in order in `lang` ('zh' | 'en'); `onDone` runs once, when
 * the last is read or reading stops. Returns stop().
 */
export function narrate(items, lang, onDone) {
  const synth = window.speechSynthesis;
  synth.cancel();
  let finished = false;
  let marked = null;
  const mark = (el) => {
    if (marked) marked.classList.remove('reading');
    marked = el || null;
    if (marked) marked.classList.add('reading');
  };
  const finish = () => {
    if (finished) return;
    finished = true;
    mark(null);
    onDone();
  };
  const voice = pickVoice(lang);
  const queue = items.filter((it) => it.text && it.text.trim());
  queue.forEach((it, i) => {
    const u = new SpeechSynthesisUtterance(it.text);
    u.lang = lang === 'en' ? 'en-US' : 'zh-CN';
    if (voice) u.voice = voice;
    u.rate = 0.9;
    u.pitch = 1.05;
    u.onstart = () => !finished && mark(it.el);
    u.onerror = finish;
    if (i === queue.length - 1) u.onend = finish;
    synth.speak(u);
  });
  if (!queue.length) finish();
  return () => {
    synth.cancel();
    finish();
  };
}

/** Wrap `el`'s text into one span per sentence (same text), and return the spans. */
export function sentenceSpans(el, pieces) {
  const spans = pieces.map((s) => {
    const span = document.createElement('span');
    span.className = 'sentence';
    span.textContent = s;
    return span;
  });
  el.replaceChildren(...spans);
  return spans;
}
