// Cutting a page into sentences, so read-aloud can show the one being read. Pure: the
// pieces joined give the text back exactly, and node --test checks them.

// A sentence ends at 。！？!?… (with any closing quotes after them), at a full stop
// followed by a space or the end, or at a line break.


const END = /[。！？!?…]+[”’"'）)」』]*\s*|\.[”’"')]*(?:\s+|$)|\n+/g;

export function sentences(text) {
  const out = [];
  let start = 0;
  for (const m of String(text || '').matchAll(END)) {
    const end = m.index + m[0].length;
    if (end > start) out.push(text.slice(start, end));
    start = end;
  }
  if (start < String(text || '').length) out.push(text.slice(start));
  // Blank pieces (spaces, line breaks) join the sentence before them: nothing to read.
  const merged = [];
  for (const piece of out) {
    if (!piece.trim() && merged.length) merged[merged.length - 1] += piece;
    else merged.push(piece);
  }
  return merged;
}
