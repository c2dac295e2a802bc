// The child's own hero on the new-story form: a name, and a drawing or a photo of a toy.
// The picture is scaled down here (a phone photo is many megabytes) and sent with the new
// story; the server decodes and re-encodes it again, whatever this page sent.

import { $, t } from './dom.js';
import { form } from './state.js';

const SEND_SIDE = 1280;
const MAX_FILE = 25_000_000; // what a browser is asked to open at all
const TYPES = ['image/png', 'image/jpeg', 'image/webp'];

/** A picture file as a JPEG data URL of at most SEND_SIDE a side, on white paper. */
async function pictureToDataUrl(file) {
  const bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  const scale = Math.min(1, SEND_SIDE / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement('canvas');
  canvas.width = Math.max(1, Math.round(bitmap.width * scale));
  canvas.height = Math.max(1, Math.round(bitmap.height * scale));
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff'; // a drawing's transparent paper stays white
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  return canvas.toDataURL('image/jpeg', 0.9);
}

function heroError(message) {
  const el = $('hero-error');
  el.textContent = message || '';
  el.hidden = !message;
}

export function clearHero() {
  form.heroPicture = null;
  $('hero-file').value = '';
  $('hero-preview').hidden = true;
  $('hero-preview-img').removeAttribute('src');
  heroError(null);
}

async function onFile() {
  const file = $('hero-file').files[0];
  heroError(null);
  if (!file) return;
  if (!TYPES.includes(file.type)) {
    clearHero();
    heroError(t('heroWrongType'));
    return;
  }
  if (file.size > MAX_FILE) {
    clearHero();
    heroError(t('heroTooBig', Math.round(MAX_FILE / 1e6)));
    return;
  }
  try {
    form.heroPicture = await pictureToDataUrl(file);
  } catch {
    clearHero();
    heroError(t('heroUnreadable'));
    return;
  }
  $('hero-preview-img').src = form.heroPicture;
  $('hero-preview').hidden = false;
}

/** What the new story carries of its hero (nothing when the parent gave nothing). */
export function heroFields() {
  const name = $('hero-name').value.trim();
  return {
    ...(name ? { hero_name: name } : {}),
    ...(form.heroPicture ? { hero_picture: form.heroPicture } : {}),
  };
}

export function wireHero() {
  $('hero-file').addEventListener('change', onFile);
  $('hero-remove').addEventListener('click', () => {
    clearHero();
    $('hero-file').focus();
  });
}
