// The page a share link opens: read-aloud that shows the sentence being read.

import { canSpeak, narrate, sentenceSpans } from './narrator.js';
import { sentences } from './sentences.js';

const button = document.getElementById('read-aloud');
const lang = (document.documentElement.lang || 'zh').toLowerCase().startsWith('en') ? 'en' : 'zh';
let stop = null;

function label(reading) {
  button.textContent = reading ? button.dataset.stop : button.dataset.read;
  button.setAttribute('aria-pressed', reading ? 'true' : 'false');
}

function items() {
  const out = [];
  const title = document.querySelector('h1');
  if (title) out.push({ text: title.textContent, el: title });
  for (const p of document.querySelectorAll('.page .text p')) {
    for (const span of sentenceSpans(p, sentences(p.textContent))) out.push({ text: span.textContent, el: span });
  }
  return out;
}

if (button && canSpeak()) {
  button.hidden = false;
  button.addEventListener('click', () => {
    if (stop) {
      stop();
      return;
    }
    label(true);
    stop = narrate(items(), lang, () => {
      stop = null;
      label(false);
    });
  });
}
