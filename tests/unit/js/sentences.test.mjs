// Read-aloud follows the text sentence by sentence: the pieces are the text, cut right.
import test from 'node:test';
import assert from 'node:assert/strict';

import { sentences } from '../../../services/gateway/static/sentences.js';

test('Chinese sentences end at 。！？ and keep their closing quotes', () => {
  const text = '小兔子图图住在森林边上。“月亮上会有什么呢？”图图想。她出发了！';
  const parts = sentences(text);
  assert.deepEqual(parts, ['小兔子图图住在森林边上。', '“月亮上会有什么呢？”', '图图想。', '她出发了！']);
  assert.equal(parts.join(''), text);
});

test('English sentences end at . ! ? before a space, and lines break them too', () => {
  const text = 'Luna found a map. "Where does it go?" she asked.\nThey ran 3.5 miles!';
  const parts = sentences(text);
  assert.deepEqual(parts, ['Luna found a map. ', '"Where does it go?" ', 'she asked.\n', 'They ran 3.5 miles!']);
  assert.equal(parts.join(''), text);
});

test('text without an ending, and no text, read as they are', () => {
  assert.deepEqual(sentences('still writing'), ['still writing']);
  assert.deepEqual(sentences(''), []);
  assert.deepEqual(sentences(null), []);
});
