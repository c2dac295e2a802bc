// The reader's words in both languages (words/zh.js, words/en.js) and the helpers that
// pick them. Values are strings or small functions taking the bits that change.

import { en } from './words/en.js';
import { zh } from './words/zh.js';

export const LANGS = ['zh', 'en'];

export const STYLES = [
  { value: 'watercolor', icon: '🎨', swatch: 'watercolor' },
  { value: 'crayon', icon: '🖍️', swatch: 'crayon' },
  { value: 'paper-cut', icon: '✂️', swatch: 'papercut' },
  { value: 'cartoon', icon: '🌈', swatch: 'cartoon' },
  { value: 'pencil sketch', icon: '✏️', swatch: 'pencil' },
  { value: 'clay', icon: '🧸', swatch: 'clay' },
];

export const STRINGS = { zh, en };

/** Friendly sentence for an error code; falls back to the server's own message. */
export function friendlyError(lang, error) {
  const table = STRINGS[lang].errors;
  // A refused idea comes with the server's own kind sentence (in the story's language,
  // with another idea to try): it says more than ours.
  if (error && error.code === 'unsuitable_idea' && error.message) return error.message;
  if (error && error.code && table[error.code]) return table[error.code];
  if (error && error.message) return error.message;
  return table.llm_failed;
}

/** The idea a kind refusal suggests: the text in 「…」 or “…”, or null. */
export function suggestedIdea(message) {
  const m = String(message || '').match(/「([^」]{1,80})」|“([^”]{1,80})”|"([^"]{1,80})"/);
  if (!m) return null;
  const idea = (m[1] || m[2] || m[3] || '').trim();
  return idea || null;
}

/** "0:42", "3:05", "1:02:09" */
export function formatElapsed(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const ss = String(s).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Retry-After seconds as a short phrase: "30 秒" / "2 分钟" / "30 seconds". */
export function formatWait(lang, seconds) {
  const s = Math.max(1, Math.round(seconds));
  if (lang === 'zh') return s < 90 ? `${s} 秒` : `${Math.round(s / 60)} 分钟`;
  if (s < 90) return `${s} second${s === 1 ? '' : 's'}`;
  const m = Math.round(s / 60);
  return `${m} minute${m === 1 ? '' : 's'}`;
}
