// The page's waiting state: built from the story, kept by socket events, said calmly.
import test from 'node:test';
import assert from 'node:assert/strict';

import { STRINGS } from '../../../services/gateway/static/i18n.js';
import { applyEvent, fromSnapshot, waitingSeconds } from '../../../services/gateway/static/story.js';

const inSeconds = (s) => new Date(Date.now() + s * 1000).toISOString();

function waitingStory(waiting) {
  return fromSnapshot({ story_id: 's', last_seq: 3, pages: [{ index: 0, status: 'writing', waiting }] });
}

test('a reader who reloads sees the page wait, and for how long', () => {
  const story = waitingStory({ reason: 'llm_busy', tries: 2, retry_in: 12, retry_at: inSeconds(12) });
  const { waiting } = story.pages[0];
  assert.equal(waiting.reason, 'llm_busy');
  assert.equal(waitingSeconds(waiting), 12);
  assert.equal(waitingSeconds(waiting, Date.now() + 5000), 7);
  assert.equal(waitingSeconds(waiting, Date.now() + 60000), 0, 'past the time: trying now');
});

test('a device clock running late never counts longer than the server said', () => {
  const story = waitingStory({ reason: 'llm_unreachable', retry_in: 12, retry_at: inSeconds(300) });
  assert.equal(waitingSeconds(story.pages[0].waiting), 12);
});

test('the socket says the page waits, then that it goes on', () => {
  const story = waitingStory(null);
  assert.equal(story.pages[0].waiting, null);
  applyEvent(story, { type: 'page.waiting', seq: 4, page: 0, reason: 'llm_unreachable', tries: 1, retry_in: 5, retry_at: inSeconds(5) });
  assert.equal(story.pages[0].waiting.reason, 'llm_unreachable');
  applyEvent(story, { type: 'page.resumed', seq: 5, page: 0, tries: 2 });
  assert.equal(story.pages[0].waiting, null);
});

for (const [name, end] of [
  ['text arrives', { type: 'page.text.delta', page: 0, attempt: 1, offset: 0, delta: '从前' }],
  ['the page is written', { type: 'page.text.done', seq: 9, page: 0, text: '从前', choices: ['a', 'b'] }],
  ['the page fails', { type: 'page.failed', seq: 9, page: 0, error: { code: 'llm_rate_limited', message: 'm' } }],
]) {
  test(`waiting ends when ${name}`, () => {
    const story = waitingStory({ reason: 'llm_busy', retry_in: 5, retry_at: inSeconds(5) });
    applyEvent(story, end);
    assert.equal(story.pages[0].waiting, null);
  });
}

test('a written page is never said to wait', () => {
  const story = fromSnapshot({ story_id: 's', pages: [{ index: 0, status: 'done', text: 't', waiting: { retry_in: 5 } }] });
  assert.equal(story.pages[0].waiting, null);
  applyEvent(story, { type: 'page.waiting', seq: 1, page: 0, reason: 'llm_busy', retry_in: 5 });
  assert.equal(story.pages[0].waiting, null);
});

test('one calm sentence in the reader language, with the seconds', () => {
  assert.equal(STRINGS.zh.waitingBusy(12), '故事作家有点忙，马上再试（12 秒）');
  assert.equal(STRINGS.en.waitingBusy(12), 'The storyteller is busy; trying again in 12 s');
  for (const lang of ['zh', 'en']) {
    for (const key of ['waitingBusy', 'waitingUnreachable']) {
      assert.match(STRINGS[lang][key](7), /7/);
      assert.doesNotMatch(STRINGS[lang][key](0), /\b0\b/, 'no "0 s": it is trying now');
    }
  }
});
