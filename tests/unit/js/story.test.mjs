// The story as the page holds it: from a library entry, before its snapshot arrives.
import test from 'node:test';
import assert from 'node:assert/strict';

import { emptyStory } from '../../../services/gateway/static/story.js';

test('a library entry opens as the story without pages, read the way a snapshot is', () => {
  const entry = {
    id: 's1', token: 'secret', title: 'The Fox', premise: 'a fox', language: 'en', style: 'crayon',
    age: 5, status: 'ended', pages: 3, total: 4, created_at: '2026-01-01T00:00:00Z', cover: '/media/c.png',
  };
  assert.deepEqual(emptyStory(entry), {
    id: 's1', title: 'The Fox', status: 'ended', premise: 'a fox', age: 5, language: 'en', style: 'crayon',
    total: 4, created_at: '2026-01-01T00:00:00Z', error: null,
    sheet: { status: 'pending', url: null, error: null }, pages: [], lastSeq: 0,
  });
  const bare = emptyStory({ id: 's2', token: 't' });
  assert.deepEqual(
    [bare.title, bare.status, bare.premise, bare.age, bare.language, bare.style, bare.total, bare.created_at],
    [null, 'in_progress', '', 6, 'zh', '', 6, null],
  );
});
