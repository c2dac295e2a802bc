// The words a parent reads: the page's language on a first visit, ages, library states.
import test from 'node:test';
import assert from 'node:assert/strict';

import { STRINGS } from '../../../services/gateway/static/i18n.js';
import { browserLang } from '../../../services/gateway/static/store.js';
import { awaitsChoice, libraryStatus } from '../../../services/gateway/static/decide.js';
import { fromSnapshot } from '../../../services/gateway/static/story.js';

test('a first visit speaks the browser language: Chinese for zh-*, English otherwise', () => {
  assert.equal(browserLang(['zh-CN', 'en']), 'zh');
  assert.equal(browserLang(['zh-TW']), 'zh');
  assert.equal(browserLang(['en-US', 'zh-CN']), 'en');
  assert.equal(browserLang(['fr-FR']), 'en');
  assert.equal(browserLang([]), 'zh', 'no language known: the default page');
});

test('ages read right in English and in Chinese', () => {
  const { en, zh } = STRINGS;
  assert.equal(en.byline(8, 'Crayon'), 'For an 8-year-old · Crayon');
  assert.equal(en.byline(11, 'Crayon'), 'For an 11-year-old · Crayon');
  assert.equal(en.byline(3, 'Crayon'), 'For a 3-year-old · Crayon');
  assert.equal(en.byline(12, 'Crayon'), 'For a 12-year-old · Crayon');
  assert.equal(zh.byline(8, '蜡笔'), '给 8 岁的小朋友 · 蜡笔');
});

test('the library says a story waits for the reader, not "still writing"', () => {
  const waiting = fromSnapshot({
    story_id: 's', status: 'in_progress', pages: [{ index: 0, status: 'done', text: 'x', choices: ['a', 'b'] }],
  });
  assert.ok(awaitsChoice(waiting));
  assert.equal(libraryStatus({ status: 'in_progress', awaitingChoice: true }), 'choose');
  assert.equal(libraryStatus({ status: 'in_progress', awaitingChoice: false }), 'in_progress');
  assert.equal(libraryStatus({ status: 'ended', awaitingChoice: true }), 'ended');
  assert.equal(libraryStatus({}), 'in_progress');
  for (const lang of ['zh', 'en']) assert.ok(STRINGS[lang].status.choose, `${lang} names the state`);
  const writing = fromSnapshot({
    story_id: 's', status: 'in_progress',
    pages: [{ index: 0, status: 'done', text: 'x', choices: ['a'], chosen: { choice: 0 } }, { index: 1, status: 'writing' }],
  });
  assert.ok(!awaitsChoice(writing));
});
