// Choices in reach: when the page shown is done and its choices are below the screen (or
// under the page bar), a button over the page bar points to them. Nothing scrolls by
// itself, so the page never moves under the reader's finger.

import { $, scrollBehavior } from '../dom.js';

let watched = null;
let observer = null;

function barHeights() {
  const top = document.querySelector('.topbar');
  const nav = $('page-nav');
  return { top: top ? top.offsetHeight : 0, bottom: nav && !nav.hidden ? nav.offsetHeight : 0 };
}

function stopWatching() {
  if (observer) observer.disconnect();
  observer = null;
  watched = null;
}

/** `state` is the page's afterState: the cue shows only for 'choices'. */
export function renderChoicesCue(state) {
  const cue = $('to-choices');
  const first = state === 'choices' ? $('page-after').querySelector('[data-testid="choice-button"]') : null;
  if (!first) {
    stopWatching();
    cue.hidden = true;
    return;
  }
  if (watched === first) return;
  stopWatching();
  watched = first;
  const bars = barHeights();
  // The first choice counts as in reach once it is whole between the two sticky bars.
  observer = new IntersectionObserver(
    ([entry]) => {
      cue.hidden = entry.isIntersecting && entry.intersectionRatio > 0.98;
      document.body.dataset.choicesInView = cue.hidden ? 'true' : 'false';
    },
    { rootMargin: `-${bars.top}px 0px -${bars.bottom}px 0px`, threshold: [0, 0.99, 1] },
  );
  observer.observe(first);
}

export function wireChoicesCue() {
  $('to-choices-button').addEventListener('click', () => {
    const box = document.getElementById('what-next-box');
    if (!box) return;
    box.scrollIntoView({ behavior: scrollBehavior(), block: 'nearest' });
    box.querySelector('[data-testid="choice-button"]:not([disabled])')?.focus({ preventScroll: true });
  });
}
