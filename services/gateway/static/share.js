// Keeping a finished story: a share link and the three downloads.

import { api, ApiError } from './api.js';
import { announce, errorText, h, scrollBehavior, showToast, t } from './dom.js';
import { STRINGS } from './i18n.js';
import { session, ui } from './state.js';

export const FORMATS = ['pdf', 'epub', 'html'];

export function keepState(c) {
  if (!c.keep) {
    c.keep = { shareUrl: null, sharing: false, copied: null, downloadOpen: false, downloading: null, downloaded: null };
  }
  return c.keep;
}

/** "Share with the family" and "Download the book", for a finished story (one per place). */
export function keepPanel(c, where) {
  if (!c.keepEls) c.keepEls = {};
  let k = c.keepEls[where];
  if (!k || k.lang !== ui.lang) {
    k = buildKeep(c, where);
    c.keepEls[where] = k;
  }
  k.update();
  return k.el;
}

export function updateKeep(c) {
  for (const k of Object.values(c.keepEls || {})) k.update();
}

export function buildKeep(c, where) {
  const st = keepState(c);
  const id = (x) => `keep-${where}-${x}`;
  const share = shareParts(c, where, id);
  const dl = downloadParts(c, id);
  const el = h(
    'section',
    { class: 'keep-card', 'data-testid': 'keep-panel', 'data-where': where, 'aria-labelledby': id('title') },
    // Under the whole story's title it is a section of its own; on the last page, under the page's.
    h(where === 'whole' ? 'h2' : 'h3', { class: 'keep-title', id: id('title') }, t('keepTitle')),
    h('div', { class: 'keep-actions' }, share.button, dl.button),
    share.box,
    dl.box,
  );
  const update = () => {
    share.update(st);
    dl.update(st);
  };
  return { el, update, lang: ui.lang };
}

/** "Share with the family": the button, then the link with copy (and the phone's own share). */
function shareParts(c, where, id) {
  const label = h('span', null, t('share'));
  const button = h(
    'button',
    { type: 'button', class: 'btn btn-primary keep-btn', 'data-testid': 'share-button', 'aria-controls': id('share'), onclick: () => shareStory(c, where) },
    h('span', { 'aria-hidden': 'true' }, '💌'),
    label,
  );
  const link = h('a', { class: 'share-link', 'data-testid': 'share-link', target: '_blank', rel: 'noopener', 'aria-label': t('shareLinkLabel') });
  const copied = h('p', { class: 'share-copied', 'data-testid': 'share-copied', role: 'status' });
  const native = typeof navigator.share === 'function'
    ? h(
        'button',
        { type: 'button', class: 'btn btn-soft btn-small', 'data-testid': 'share-native', onclick: () => nativeShare(c) },
        h('span', { 'aria-hidden': 'true' }, '📱'),
        h('span', null, t('shareNative')),
      )
    : null;
  const box = h(
    'div',
    { id: id('share'), class: 'share-box', 'data-testid': 'share-panel', hidden: true },
    h('p', { class: 'share-lead' }, t('shareLead')),
    link,
    h(
      'div',
      { class: 'share-actions' },
      h(
        'button',
        { type: 'button', class: 'btn btn-accent btn-small', 'data-testid': 'share-copy', onclick: () => copyShareLink(c, link) },
        h('span', { 'aria-hidden': 'true' }, '📋'),
        h('span', null, t('shareCopy')),
      ),
      native,
    ),
    copied,
  );
  const update = (st) => {
    button.disabled = st.sharing;
    button.setAttribute('aria-busy', st.sharing ? 'true' : 'false');
    button.setAttribute('aria-expanded', st.shareUrl ? 'true' : 'false');
    label.textContent = st.sharing ? t('sharing') : t('share');
    box.hidden = !st.shareUrl;
    if (st.shareUrl && link.getAttribute('href') !== st.shareUrl) {
      link.href = st.shareUrl;
      link.textContent = st.shareUrl;
    }
    copied.hidden = !st.copied;
    copied.dataset.result = st.copied || '';
    copied.textContent = st.copied === 'ok' ? t('shareCopied') : st.copied === 'failed' ? t('shareCopyFailed') : '';
  };
  return { button, box, update };
}

/** "Download the book": the button, then one button per format. */
function downloadParts(c, id) {
  const st = keepState(c);
  const button = h(
    'button',
    {
      type: 'button',
      class: 'btn btn-soft keep-btn',
      'data-testid': 'download-button',
      'aria-controls': id('dl'),
      'aria-expanded': 'false',
      onclick: () => {
        st.downloadOpen = !st.downloadOpen;
        updateKeep(c);
      },
    },
    h('span', { 'aria-hidden': 'true' }, '📥'),
    h('span', null, t('download')),
  );
  const formats = STRINGS[ui.lang].formats;
  const fmtButtons = FORMATS.map((fmt) =>
    h(
      'button',
      { type: 'button', class: `format-btn format-${fmt}`, 'data-testid': `download-${fmt}`, 'data-format': fmt, onclick: () => downloadStory(c, fmt) },
      h('span', { class: 'format-name' }, formats[fmt].name),
      h('span', { class: 'format-hint' }, formats[fmt].hint),
    ),
  );
  const done = h('p', { class: 'download-done', 'data-testid': 'download-done', role: 'status', hidden: true });
  const box = h(
    'div',
    { id: id('dl'), class: 'download-box', 'data-testid': 'download-options', hidden: true },
    h('p', { class: 'download-lead', id: id('dl-lead') }, t('downloadChoose')),
    h('div', { class: 'formats', role: 'group', 'aria-labelledby': id('dl-lead') }, ...fmtButtons),
    done,
  );
  const update = () => {
    button.setAttribute('aria-expanded', st.downloadOpen ? 'true' : 'false');
    box.hidden = !st.downloadOpen;
    done.hidden = !st.downloaded;
    done.textContent = st.downloaded ? t('downloaded', st.downloaded) : '';
    for (const b of fmtButtons) {
      const busy = st.downloading === b.dataset.format;
      b.disabled = Boolean(st.downloading);
      b.setAttribute('aria-busy', busy ? 'true' : 'false');
      b.querySelector('.format-hint').textContent = busy ? t('downloading') : formats[b.dataset.format].hint;
    }
  };
  return { button, box, update };
}

export async function shareStory(c, where) {
  const st = keepState(c);
  if (st.sharing) return;
  if (!st.shareUrl) {
    st.sharing = true;
    updateKeep(c);
    try {
      const { data } = await api.share(c.id, c.token);
      if (!data || typeof data.url !== 'string') throw new ApiError(500, 'internal', '');
      st.shareUrl = new URL(data.url, location.origin).href;
    } catch (err) {
      if (session.current === c) showToast(errorText(err), { kind: 'error' });
    } finally {
      st.sharing = false;
      updateKeep(c);
    }
    if (!st.shareUrl) return;
    announce(t('shareLead'));
  }
  const box = c.keepEls && c.keepEls[where] ? c.keepEls[where].el.querySelector('.share-box') : null;
  if (box) {
    box.scrollIntoView({ behavior: scrollBehavior(), block: 'center' });
    box.querySelector('[data-testid="share-copy"]')?.focus({ preventScroll: true });
  }
}

export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    /* no permission: the old way below */
  }
  const area = h('textarea', { readonly: true, class: 'visually-hidden', 'aria-hidden': 'true', tabindex: '-1' });
  area.value = text;
  document.body.append(area);
  const focus = document.activeElement;
  area.select();
  area.setSelectionRange(0, text.length);
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  if (focus && focus.focus) focus.focus({ preventScroll: true });
  return ok;
}

export async function copyShareLink(c, link) {
  const st = keepState(c);
  if (!st.shareUrl) return;
  const ok = await copyText(st.shareUrl);
  st.copied = ok ? 'ok' : 'failed';
  updateKeep(c);
  if (!ok) {
    // Select the link so a long press (or Ctrl+C) copies it.
    const range = document.createRange();
    range.selectNodeContents(link);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  announce(ok ? t('shareCopied') : t('shareCopyFailed'));
  clearTimeout(c.copiedTimer);
  c.copiedTimer = setTimeout(() => {
    if (st.copied === 'ok') {
      st.copied = null;
      updateKeep(c);
    }
  }, 4000);
}

export async function nativeShare(c) {
  const st = keepState(c);
  if (!st.shareUrl || typeof navigator.share !== 'function') return;
  const title = (c.story && c.story.title) || t('appName');
  try {
    await navigator.share({ title, text: t('shareText', title), url: st.shareUrl });
  } catch {
    /* cancelled, or not allowed: the link and the copy button are still there */
  }
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export async function downloadStory(c, fmt) {
  const st = keepState(c);
  if (st.downloading) return;
  st.downloading = fmt;
  st.downloaded = null;
  updateKeep(c);
  try {
    const { blob, filename } = await api.exportStory(c.id, c.token, fmt);
    const stem = ((c.story && c.story.title) || 'story').replace(/[\\/:*?"<>|\s]+/g, '-').slice(0, 60) || 'story';
    const name = filename || `${stem}.${fmt}`;
    saveBlob(blob, name);
    st.downloaded = name; // said in the panel (a role=status line), not in a toast
  } catch (err) {
    if (session.current === c) showToast(errorText(err), { kind: 'error' });
  } finally {
    st.downloading = null;
    updateKeep(c);
  }
}
