"""The word list against a labelled set of story ideas, in each language.

tests/data/ideas_<language>.txt holds at least 150 harmless and 150 unsuitable
ideas, judged for a six-year-old. The list alone must accept at least 98 % of the
harmless ones (a refused bedtime story is a broken product) and refuse at least 90 %
of the unsuitable ones; what it lets through still goes to the model's own check,
which is why the floor is not 100 %.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from services.common.safety import check

DATA = Path(__file__).resolve().parents[1] / "data"
AGE = 6
HARMLESS_ACCEPTED = 0.98
UNSUITABLE_REFUSED = 0.90


def ideas(language: str) -> tuple[list[str], list[str]]:
    harmless, unsuitable = [], []
    for line in (DATA / f"ideas_{language}.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("+ "):
            harmless.append(line[2:].strip())
        elif line.startswith("- "):
            unsuitable.append(line[2:].strip())
    return harmless, unsuitable


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_word_list_on_labelled_ideas(language: str, capsys: pytest.CaptureFixture[str]) -> None:
    harmless, unsuitable = ideas(language)
    assert len(harmless) >= 150 and len(unsuitable) >= 150
    wrongly_refused = [t for t in harmless if not check(t, age=AGE).ok]
    let_through = [t for t in unsuitable if check(t, age=AGE).ok]
    accepted = 1 - len(wrongly_refused) / len(harmless)
    refused = 1 - len(let_through) / len(unsuitable)
    with capsys.disabled():
        print(
            f"\nword list, {language}, age {AGE}: harmless accepted "
            f"{len(harmless) - len(wrongly_refused)}/{len(harmless)} ({accepted:.1%}), "
            f"unsuitable refused {len(unsuitable) - len(let_through)}/{len(unsuitable)} ({refused:.1%}); "
            f"left to the model: {let_through}"
        )
    assert accepted >= HARMLESS_ACCEPTED, wrongly_refused
    assert refused >= UNSUITABLE_REFUSED, let_through
