// The page's decisions: what a picture box, a page's foot and the reader's next step show.
import test from 'node:test';
import assert from 'node:assert/strict';

import {
  afterState,
  canChoose,
  clampAge,
  firstPageToShow,
  isPlanning,
  pictureAlt,
  pictureState,
  sheetOffer,
} from '../../../services/gateway/static/decide.js';
import { applyEvent, fromSnapshot } from '../../../services/gateway/static/story.js';

const story = (pages, extra = {}) =>
  fromSnapshot({ story_id: 's', title: 'T', status: 'in_progress', total_pages: 4, pages, ...extra });
const done = (index, extra = {}) => ({ index, status: 'done', text: 'words', choices: ['a', 'b'], ...extra });

test('the picture box says what is happening in every state', () => {
  const page = (p) => story([p]).pages[0];
  assert.equal(pictureState(page({ index: 0, status: 'writing' })), 'waiting');
  assert.equal(pictureState(page(done(0))), 'queued');
  assert.equal(pictureState(page(done(0, { image: { status: 'pending' } }))), 'queued');
  assert.equal(pictureState(page(done(0, { image: { status: 'pending', started_at: '2026-01-01T00:00:00Z' } }))), 'drawing');
  assert.equal(pictureState(page(done(0, { image: { status: 'ready', url: '/m/1.png' } }))), 'ready');
  assert.equal(pictureState(page(done(0, { image: { status: 'failed', error: { code: 'image_failed' } } }))), 'failed');
  assert.equal(pictureState(page(done(0, { image: { status: 'none' } }))), 'resting');
  const refused = page({ index: 0, status: 'failed', error: { code: 'unsuitable_idea' } });
  assert.equal(pictureState(refused), 'resting', 'a refused premise draws nothing and says nothing');
  const ready = page(done(0, { image: { status: 'ready', url: '/m/1.png' } }));
  ready.imageLocal = 'load-failed';
  assert.equal(pictureState(ready), 'load-failed');
  ready.imageLocal = 'redrawing';
  assert.equal(pictureState(ready), 'redrawing');
});

test("a picture's alt text is the storyteller's description, else the fallback", () => {
  const s = story([done(0, { alt: '  小兔子站在月光下的草地上  ' }), done(1)]);
  assert.equal(pictureAlt(s.pages[0], 'picture 1'), '小兔子站在月光下的草地上');
  assert.equal(pictureAlt(s.pages[1], 'picture 2'), 'picture 2');
  applyEvent(s, { type: 'page.text.done', seq: 9, page: 1, text: 'x', choices: [], alt: 'A fox reads a map.' });
  assert.equal(pictureAlt(s.pages[1], 'picture 2'), 'A fox reads a map.');
});

test("what comes under a page's words follows the story", () => {
  const s = story([done(0, { chosen: { choice: 1 } }), done(1), { index: 2, status: 'writing' }]);
  assert.equal(afterState(s.pages[0], s), 'chosen-next');
  assert.equal(afterState(s.pages[2], s), 'writing');
  const latest = story([done(0)]);
  assert.equal(afterState(latest.pages[0], latest), 'choices');
  assert.ok(canChoose(latest.pages[0], latest));
  latest.pages[0].local = 'choosing';
  assert.ok(!canChoose(latest.pages[0], latest), 'one choice at a time');
  const chosen = story([done(0, { chosen: { action: 'fly' } })]);
  assert.equal(afterState(chosen.pages[0], chosen), 'chosen-writing');
  const older = story([done(0), done(1)]);
  assert.ok(!canChoose(older.pages[0], older), 'only the latest page can be chosen on');
});

test('the last page ends the story, or waits for its ending', () => {
  const last = done(3, { choices: [] });
  const ending = story([done(0), done(1), done(2), last]);
  assert.equal(afterState(ending.pages[3], ending), 'ending-written');
  const ended = story([done(0), done(1), done(2), last], { status: 'ended' });
  assert.equal(afterState(ended.pages[3], ended), 'end');
  assert.equal(firstPageToShow(ended), 0, 'a finished story opens at its first page');
  assert.equal(firstPageToShow(ending), 3, 'one in progress opens where it is written');
});

test('a story is planning until its first words', () => {
  assert.ok(isPlanning(story([])));
  assert.ok(isPlanning(fromSnapshot({ story_id: 's', pages: [{ index: 0, status: 'writing' }] })));
  assert.ok(!isPlanning(story([done(0)])));
  assert.ok(!isPlanning(story([], { status: 'failed' })), 'a failed story is not planning');
});

test('the sheet can be asked for again on the latest page once it failed', () => {
  const s = story([done(0), done(1)], { character_sheet: { status: 'failed' } });
  assert.ok(sheetOffer(s.pages[1], s));
  assert.ok(!sheetOffer(s.pages[0], s));
  const fine = story([done(0)], { character_sheet: { status: 'ready', url: '/m/sheet.png' } });
  assert.ok(!sheetOffer(fine.pages[0], fine));
});

test('the age stays within what the form offers', () => {
  assert.equal(clampAge('8'), 8);
  assert.equal(clampAge(1), 3);
  assert.equal(clampAge(40), 12);
  assert.equal(clampAge('x'), 6);
});
