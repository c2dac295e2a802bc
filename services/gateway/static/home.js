// The new-story screen: the premise, ideas, age, language and drawing style.

import { api, ApiError } from './api.js';
import { clampAge, MAX_AGE, MAX_PREMISE, MIN_AGE } from './decide.js';
import { $, announce, h, scrollBehavior, styleLabel, t } from './dom.js';
import { clearHero, heroFields, wireHero } from './hero-form.js';
import { formatWait, STRINGS, STYLES } from './i18n.js';
import { renderLibrary } from './library.js';
import { form, session, ui } from './state.js';
import { listStories, saveStoryEntry } from './store.js';
import { kindHint, refusalMessage } from './widgets.js';

export function renderHome() {
  renderChips();
  renderStyles();
  updateCount();
  const stories = listStories();
  $('recent').hidden = stories.length === 0;
  if (stories.length) renderLibrary($('recent-list'), stories.slice(0, 3));
}

export function renderChips() {
  const box = $('chips');
  const list = STRINGS[ui.lang].suggestions;
  if (box.dataset.lang === ui.lang) return;
  box.dataset.lang = ui.lang;
  box.replaceChildren(
    ...list.map((text, i) =>
      h(
        'button',
        {
          type: 'button',
          class: `chip chip-${i % 4}`,
          'data-testid': 'suggestion-chip',
          onclick: () => {
            const premise = $('premise');
            premise.value = text;
            updateCount();
            clearPremiseError();
            premise.focus();
          },
        },
        text,
      ),
    ),
  );
}

export function renderStyles() {
  const box = $('styles');
  if (box.dataset.lang === ui.lang) return;
  box.dataset.lang = ui.lang;
  box.replaceChildren(
    ...STYLES.map((s) =>
      h(
        'label',
        { class: `style-card swatch-${s.swatch}` },
        h('input', {
          type: 'radio',
          name: 'style',
          value: s.value,
          'data-testid': 'style-option',
          checked: form.style === s.value,
          onchange: () => {
            form.style = s.value;
          },
        }),
        h(
          'span',
          { class: 'style-face' },
          h('span', { class: 'style-swatch', 'aria-hidden': 'true' }, h('span', { class: 'style-emoji' }, s.icon)),
          h('span', { class: 'style-name' }, styleLabel(s.value)),
        ),
      ),
    ),
  );
}

export function updateCount() {
  const n = $('premise').value.length;
  const el = $('premise-count');
  el.textContent = t('premiseCount', n, MAX_PREMISE);
  el.classList.toggle('near', n > MAX_PREMISE * 0.9);
  // Pasted or typed past the limit: said at once, never cut without a word.
  const over = n > MAX_PREMISE;
  el.classList.toggle('over', over);
  if (over) showPremiseError(t('premiseTooLong', MAX_PREMISE, n), 'long');
  else if ($('premise-error').dataset.kind === 'long') clearPremiseError();
}

export function showPremiseError(msg, kind = 'input') {
  const el = $('premise-error');
  el.dataset.kind = kind;
  el.textContent = msg;
  el.hidden = false;
  $('premise').setAttribute('aria-invalid', 'true');
}

export function clearPremiseError() {
  $('premise-error').hidden = true;
  delete $('premise-error').dataset.kind;
  $('premise').removeAttribute('aria-invalid');
}

export function setAge(v) {
  const age = clampAge(v);
  $('age').value = String(age);
  $('age-minus').disabled = age <= MIN_AGE;
  $('age-plus').disabled = age >= MAX_AGE;
}

export async function startStory(e) {
  if (e) e.preventDefault();
  if (session.starting) return;
  const premise = $('premise').value.trim();
  hideFormError();
  hidePremiseHint();
  if (!premise) {
    showPremiseError(t('premiseEmpty'));
    $('premise').focus();
    return;
  }
  if (premise.length > MAX_PREMISE) {
    showPremiseError(t('premiseTooLong', MAX_PREMISE, premise.length), 'long');
    $('premise').focus();
    return;
  }
  clearPremiseError();
  const age = clampAge($('age').value);
  setAge(age);
  const language = document.querySelector('input[name="language"]:checked')?.value === 'en' ? 'en' : 'zh';
  const style = form.style;
  setStarting(true);
  try {
    const { data } = await api.createStory({ premise, age, language, style, ...heroFields() });
    if (!data || !data.story_id || !data.token) throw new ApiError(500, 'llm_failed', '');
    saveStoryEntry({
      id: data.story_id,
      token: data.token,
      title: null,
      premise,
      language,
      style,
      age,
      status: 'in_progress',
      pages: 0,
      total: 6,
      created_at: new Date().toISOString(),
      cover: null,
    });
    $('premise').value = '';
    $('hero-name').value = '';
    clearHero();
    updateCount();
    location.hash = `#/story/${encodeURIComponent(data.story_id)}`;
  } catch (err) {
    showFormError(err);
  } finally {
    setStarting(false);
  }
}

export function setStarting(on) {
  session.starting = on;
  const btn = $('start-button');
  btn.disabled = on;
  btn.setAttribute('aria-busy', on ? 'true' : 'false');
  btn.querySelector('.btn-label').textContent = on ? t('starting') : t('start');
}

export function hideFormError() {
  $('form-error').hidden = true;
  $('form-error').replaceChildren();
}

export function showPremiseHint(message) {
  const slot = $('premise-hint');
  slot.replaceChildren(
    kindHint(message, {
      testid: 'kind-hint',
      onUse: (idea) => {
        const premise = $('premise');
        premise.value = idea;
        updateCount();
        clearPremiseError();
        hidePremiseHint();
        premise.focus();
      },
    }),
  );
  slot.hidden = false;
  announce(message);
  slot.scrollIntoView({ behavior: scrollBehavior(), block: 'nearest' });
}

export function hidePremiseHint() {
  const slot = $('premise-hint');
  slot.hidden = true;
  slot.replaceChildren();
}

export function showFormError(err) {
  if (err && err.code === 'unsuitable_idea') {
    showPremiseHint(refusalMessage(err));
    return;
  }
  const box = $('form-error');
  let main;
  let hint;
  if (err.code === 'busy' || err.status === 503) {
    main = t('busy');
    hint = err.retryAfter != null ? t('retryAfter', formatWait(ui.lang, err.retryAfter)) : null;
  } else if (err.code === 'network') {
    main = t('network');
    hint = null;
  } else {
    const known = STRINGS[ui.lang].errors[err.code];
    main = err.message || known || t('network');
    hint = known && known !== main && err.code !== 'invalid_input' ? known : t('startFailedHint');
  }
  box.replaceChildren(
    h('span', { class: 'alert-icon', 'aria-hidden': 'true' }, '🙈'),
    h(
      'div',
      { class: 'alert-body' },
      h('p', { class: 'alert-main', 'data-testid': 'error-message', 'data-kind': 'start', 'data-code': err.code }, main),
      hint ? h('p', { class: 'alert-hint', 'data-testid': 'error-hint' }, hint) : null,
      err.code === 'invalid_input'
        ? null
        : h(
            'button',
            { type: 'button', class: 'btn btn-small btn-accent', 'data-testid': 'start-retry', onclick: () => startStory() },
            t('tryAgain'),
          ),
    ),
  );
  box.hidden = false;
  box.scrollIntoView({ behavior: scrollBehavior(), block: 'nearest' });
}

/** Back to the form with a premise ready (or an empty one). */
export function startWith(premise) {
  const el = $('premise');
  el.value = premise || '';
  hidePremiseHint();
  clearPremiseError();
  location.hash = '#/';
  updateCount();
  setTimeout(() => el.focus({ preventScroll: false }), 0);
}

/** The form's own events; `onUiLang` follows the story's language with the page's. */
export function wireHome(onUiLang) {
  setAge($('age').value);
  wireHero();
  $('story-form').addEventListener('submit', startStory);
  $('premise').addEventListener('input', () => {
    clearPremiseError();
    updateCount();
  });
  $('premise').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.metaKey || e.ctrlKey)) startStory(e);
  });
  $('age-minus').addEventListener('click', () => setAge(clampAge($('age').value) - 1));
  $('age-plus').addEventListener('click', () => setAge(clampAge($('age').value) + 1));
  $('age').addEventListener('change', () => setAge($('age').value));
  for (const r of document.querySelectorAll('input[name="language"]')) {
    r.addEventListener('change', () => r.checked && onUiLang(r.value));
  }
}
