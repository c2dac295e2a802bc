// The picture box, the note under it and the characters' sheet.

import { redrawImage, redrawSheet } from './actions.js';
import { livePage } from './session.js';
import { pictureAlt, pictureState, sheetOffer, storyLang } from '../decide.js';
import { $, elapsedSince, h, t } from '../dom.js';
import { formatElapsed, friendlyError } from '../i18n.js';
import { ICONS } from '../icons.js';
import { render, session, ui } from '../state.js';
import { sheetUrl } from '../story.js';

/** "Meet the characters": the character sheet, small, on the first page once it is drawn. */
export function renderPageSheet(box, page, story) {
  const url = page.index === 0 ? sheetUrl(story) : null;
  // After the sheet failed, on the latest page: the reader may ask for it again.
  const offer = !url && sheetOffer(page, story);
  const sig = JSON.stringify([url, offer, story.sheetLocal || null, ui.lang, story.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  if (offer) {
    box.replaceChildren(sheetAgainCard(story));
    return;
  }
  if (!url) {
    box.replaceChildren();
    return;
  }
  const c = session.current;
  const open = Boolean(c && c.sheetOpen);
  const more = h('span', { class: 'sheet-more' }, open ? t('sheetClose') : t('sheetOpen'));
  const figure = h(
    'figure',
    { class: `sheet-card${open ? ' open' : ''}`, 'data-testid': 'character-sheet' },
    h(
      'button',
      {
        type: 'button',
        class: 'sheet-toggle',
        'aria-expanded': open ? 'true' : 'false',
        onclick: (e) => {
          const now = !figure.classList.contains('open');
          figure.classList.toggle('open', now);
          e.currentTarget.setAttribute('aria-expanded', now ? 'true' : 'false');
          more.textContent = now ? t('sheetClose') : t('sheetOpen');
          if (session.current) session.current.sheetOpen = now;
        },
      },
      h(
        'span',
        { class: 'sheet-thumb' },
        h('img', { src: url, alt: t('sheetAlt'), 'data-testid': 'character-sheet-image', decoding: 'async' }),
      ),
      h(
        'span',
        { class: 'sheet-words' },
        h('span', { class: 'sheet-title' }, h('span', { 'aria-hidden': 'true' }, '👋 '), t('sheetTitle')),
        h('span', { class: 'sheet-sub' }, t('sheetSub')),
        more,
      ),
    ),
  );
  box.replaceChildren(figure);
}

/** The characters' picture failed: pages are drawn from their words until it is drawn again. */
export function sheetAgainCard(story) {
  const asking = story.sheetLocal === 'asking';
  return h(
    'div',
    { class: 'sheet-again', 'data-testid': 'sheet-again' },
    h('p', { class: 'sheet-again-words' }, h('span', { 'aria-hidden': 'true' }, '🎨 '), t('sheetFailed')),
    h(
      'button',
      {
        type: 'button',
        class: 'btn btn-soft btn-small',
        'data-testid': 'sheet-again-button',
        disabled: asking ? true : null,
        onclick: () => redrawSheet(),
      },
      asking ? t('sheetAsking') : t('sheetAgain'),
    ),
  );
}

/** The whole story's cover: the characters, big, once drawn. */
export function renderWholeSheet(story) {
  const box = $('whole-sheet');
  const url = sheetUrl(story);
  const sig = JSON.stringify([url, ui.lang, story.id]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.replaceChildren(
    ...(url
      ? [
          h(
            'figure',
            { class: 'sheet-cover', 'data-testid': 'whole-character-sheet' },
            h('img', { src: url, alt: t('sheetAlt'), decoding: 'async' }),
            h('figcaption', null, h('span', { 'aria-hidden': 'true' }, '👋 '), t('sheetTitle')),
          ),
        ]
      : []),
  );
}

/** Drawn without the character sheet: a small word under the picture, never over it. */
export function renderPictureNote(box, page) {
  const img = page.image;
  const show = Boolean(img && img.status === 'ready' && img.url && img.note);
  const sig = JSON.stringify([show, show && img.note, ui.lang]);
  if (box.dataset.sig === sig) return;
  box.dataset.sig = sig;
  box.hidden = !show;
  box.replaceChildren(...(show ? [h('span', { title: img.note }, t('imageTextOnly'))] : []));
}

/** The picture box: never empty, always says what is happening. */
export function renderPicture(slot, page, story) {
  const img = page.image;
  const state = pictureState(page);
  const sig = JSON.stringify([
    state, img && img.url, img && img.started_at, img && img.error, img && img.note, page.alt, ui.lang, page.index, story.id,
  ]);
  if (slot.dataset.sig === sig) return;
  slot.dataset.sig = sig;
  slot.dataset.state = state;
  slot.replaceChildren(PICTURE_STATES[state](slot, page, story));
}

const status = (kind, ...children) =>
  h('div', { class: `pic-status pic-${kind}`, 'data-testid': 'image-status', 'data-status': kind }, ...children);

const art = (name) => h('div', { class: 'pic-art', html: ICONS[name] });

const PICTURE_STATES = {
  ready: readyPicture,
  drawing: (slot, page) =>
    status(
      'drawing',
      art('drawing'),
      h('p', { class: 'pic-title' }, t('imageDrawing')),
      h(
        'p',
        { class: 'pic-elapsed', 'data-testid': 'image-elapsed', 'data-started-at': page.image.started_at },
        t('imageElapsed', formatElapsed(elapsedSince(page.image.started_at))),
      ),
      h('p', { class: 'pic-hint' }, t('imageHint')),
    ),
  queued: () => status('queued', art('waiting'), h('p', { class: 'pic-title' }, t('imageQueued')), h('p', { class: 'pic-hint' }, t('imageHint'))),
  redrawing: () => status('redrawing', art('waiting'), h('p', { class: 'pic-title' }, t('redrawing')), h('p', { class: 'pic-hint' }, t('imageHint'))),
  // The premise was refused: nothing will be drawn, and nothing needs saying here.
  resting: () => status('resting', art('waiting')),
  waiting: () => status('waiting', art('waiting'), h('p', { class: 'pic-title' }, t('imageWaitText'))),
  failed: (slot, page) => brokenPicture(slot, page, true),
  'load-failed': (slot, page) => brokenPicture(slot, page, false),
};

function readyPicture(slot, page, story) {
  const img = page.image;
  const image = h('img', {
    class: 'pic-img',
    src: img.url,
    alt: pictureAlt(page, t('imageAlt', page.index + 1)),
    lang: page.alt ? storyLang(story) : null,
    'data-testid': 'page-image',
    decoding: 'async',
  });
  const frame = h(
    'div',
    { class: 'pic-frame loading' },
    image,
    h('span', { class: 'pic-loading-text', 'aria-hidden': 'true' }, t('imageLoading')),
  );
  image.addEventListener('load', () => frame.classList.remove('loading'));
  image.addEventListener('error', () => {
    const live = livePage(session.current, page.index);
    if (live && live.image && live.image.url === img.url) {
      live.imageLocal = 'load-failed';
      render();
    }
  });
  if (image.complete && image.naturalWidth) frame.classList.remove('loading');
  return frame;
}

/** A drawing that failed (ask for it again) or that did not load (load it again). */
function brokenPicture(slot, page, failed) {
  const img = page.image;
  const detail = failed ? friendlyError(ui.lang, img.error) : null;
  const again = () => {
    if (failed) {
      redrawImage(page.index);
      return;
    }
    const live = livePage(session.current, page.index);
    if (live) live.imageLocal = null;
    slot.dataset.sig = '';
    render();
  };
  return status(
    failed ? 'failed' : 'load-failed',
    art('broken'),
    h(
      'p',
      { class: 'pic-title', 'data-testid': 'error-message', 'data-kind': 'image', 'data-code': failed && img.error ? img.error.code : 'load' },
      failed ? t('imageFailed') : t('imageLoadFailed'),
    ),
    detail ? h('p', { class: 'pic-hint' }, detail) : null,
    h(
      'button',
      { type: 'button', class: 'btn btn-accent', 'data-testid': failed ? 'redraw-button' : 'reload-image-button', onclick: again },
      h('span', { 'aria-hidden': 'true' }, '🖌️ '),
      failed ? t('redraw') : t('reload'),
    ),
  );
}
