"""The story store on both databases: ordering, idempotence, conflicts, restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import event

from services.common import contracts as c
from services.common.topology import Topology
from services.gateway.store.errors import Conflict, Forbidden, NotFound, StoreError
from services.gateway.store.repo import Store

OUTLINE = c.Outline(
    title="图图去月亮",
    characters=[c.Character(name="图图", look="a small white rabbit with a red scarf")],
    style="crayon",
    arc=["a", "b", "c"],
)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    s = Store(store_url, topology=Topology("t"))
    await s.create_schema()
    yield s
    await s.close()


async def new_story(store: Store, pages: int = 3) -> str:
    story_id, _, _ = await store.create_story(
        premise="一只想去月亮上的小兔子", age=5, language="zh", style="crayon", total_pages=pages
    )
    return story_id


async def write_page(store: Store, sid: str, page: int, choices: list[str] | None = None) -> None:
    await store.apply(
        c.PageTextDone(
            story_id=sid, page=page, text=f"第{page}页", choices=choices or ["左", "右"], image_prompt="p"
        )
    )


async def test_a_story_runs_to_its_end_and_survives_a_restart(store: Store, store_url: str) -> None:
    sid = await new_story(store)
    changes = await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    assert [e.type for e in changes.events] == ["story.outlined"]
    assert changes.outbox[0].body["kind"] == "page" and changes.outbox[0].body["page"] == 0
    await write_page(store, sid, 0)
    await store.choose(sid, page=0, choice=1, action=None)
    await write_page(store, sid, 1)
    nxt = await store.choose(sid, page=1, choice=None, action="去找猫头鹰")
    task = c.PageTask.model_validate(nxt.outbox[0].body)
    assert task.direction == "去找猫头鹰"
    assert [(p.index, p.chosen) for p in task.story_so_far] == [(0, "右"), (1, "去找猫头鹰")]
    ended = await store.apply(
        c.PageTextDone(story_id=sid, page=2, text="完", choices=["x"], image_prompt="p")
    )
    assert [e.type for e in ended.events] == ["page.text.done", "story.ended"]
    assert ended.events[0].data["choices"] == [], "the last page has no choices"

    reopened = Store(store_url, topology=Topology("t"))
    try:
        story = (await reopened.read_story(sid)).model_dump()
        events = await reopened.events_after(sid, 0)
    finally:
        await reopened.close()
    assert story["status"] == "ended" and story["title"] == "图图去月亮"
    assert [p["text"] for p in story["pages"]] == ["第0页", "第1页", "完"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))


async def test_redelivered_and_stale_results_change_nothing(store: Store) -> None:
    sid = await new_story(store)
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    assert (await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))).events == []
    await write_page(store, sid, 0)
    assert (
        await store.apply(
            c.PageTextDone(story_id=sid, page=0, text="again", choices=["a", "b"], image_prompt="p")
        )
    ).events == []
    ready = c.ImageReady(story_id=sid, page=0, media_path=f"{sid}/a.webp")
    assert len((await store.apply(ready)).events) == 1
    assert (await store.apply(ready)).events == []
    # A redraw makes the first attempt's late results stale.
    redraw = await store.redraw(sid, page=0)
    assert c.ImageTask.model_validate(redraw.outbox[0].body).attempt == 2
    late = c.ImageFailed(story_id=sid, page=0, error=c.ErrorInfo(code="x", message="y"), attempt=1)
    assert (await store.apply(late)).events == []
    story = (await store.read_story(sid)).model_dump()
    assert story["pages"][0]["text"] == "第0页" and story["pages"][0]["image"]["status"] == "pending"


async def test_choice_rules(store: Store) -> None:
    sid = await new_story(store)
    with pytest.raises(Conflict, match="still being written"):
        await store.choose(sid, page=0, choice=0, action=None)
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    await write_page(store, sid, 0)
    with pytest.raises(StoreError, match="between 0 and 1"):
        await store.choose(sid, page=0, choice=5, action=None)
    with pytest.raises(Conflict, match="not the latest"):
        await store.choose(sid, page=3, choice=0, action=None)
    with pytest.raises(NotFound):
        await store.choose("nope", page=0, choice=0, action=None)

    # Ten readers' taps on the same page at once: exactly one wins, nothing else changes.
    results = await asyncio.gather(
        *(store.choose(sid, page=0, choice=i % 2, action=None) for i in range(10)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, Exception)]
    assert len(won) == 1 and all(isinstance(r, Conflict) for r in results if r not in won)
    story = (await store.read_story(sid)).model_dump()
    assert len(story["pages"]) == 2
    events = await store.events_after(sid, 0)
    assert [e["type"] for e in events].count("page.chosen") == 1


async def test_concurrent_results_get_distinct_consecutive_seqs(store: Store) -> None:
    sid = await new_story(store, pages=2)
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    await asyncio.gather(
        store.apply(c.ImageRequested(story_id=sid, page=0, prompt="p")),
        write_page(store, sid, 0),
        store.apply(c.ImageReady(story_id=sid, page=0, media_path=f"{sid}/x.webp")),
    )
    seqs = [e["seq"] for e in await store.events_after(sid, 0)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == 5


async def test_outbox_keeps_unpublished_work(store: Store) -> None:
    sid = await new_story(store)
    pending = await store.pending_outbox(older_than=timedelta(0))
    mine = [row for row in pending if row.story_id == sid]
    assert len(mine) == 1 and mine[0].routing_key == "llm.tasks"
    await store.mark_published([mine[0].id])
    assert sid not in {r.story_id for r in await store.pending_outbox(older_than=timedelta(0))}


async def test_tokens(store: Store) -> None:
    sid, token, _ = await store.create_story(
        premise="x", age=6, language="en", style="cartoon", total_pages=3
    )
    await store.authorize(sid, token)
    with pytest.raises(StoreError) as info:
        await store.authorize(sid, token[:-1] + ("A" if token[-1] != "A" else "B"))
    assert isinstance(info.value, Forbidden)
    with pytest.raises(NotFound):
        await store.authorize("0" * 32, token)


async def test_usage_reports_at_once_are_all_counted_per_story_and_per_day(store: Store) -> None:
    sids = [await new_story(store) for _ in range(3)]
    reports = [
        c.UsageReport(story_id=sid, tokens_in=10, tokens_out=3, llm_calls=1, image_calls=i % 2, pictures=1)
        for sid in sids
        for i in range(20)
    ]
    await asyncio.gather(*(store.apply(r) for r in reports))
    usage = (await store.usage(days=1)).model_dump(exclude_none=True)
    assert usage["totals"] == {
        "stories": 3,
        "tokens_in": 600,
        "tokens_out": 180,
        "llm_calls": 60,
        "image_calls": 30,
        "pictures": 60,
        "retries": 0,
    }
    for sid in sids:
        cost = ((await store.read_story(sid)).model_dump())["usage"]
        assert (cost["tokens_in"], cost["tokens_out"], cost["pictures"]) == (200, 60, 20)


async def test_a_sheet_drawn_for_a_lost_outline_attempt_is_never_the_storys(store: Store) -> None:
    sid = await new_story(store)
    key = c.sheet_key(OUTLINE.characters, OUTLINE.style)
    lost = c.sheet_key([c.Character(name="Lulu", look="a grey cat")], OUTLINE.style)

    def sheet(k: str) -> c.ImageReady:
        return c.ImageReady(story_id=sid, page=c.SHEET_PAGE, media_path=f"{sid}/sheet-{k}.webp", sheet=k)

    # The sheet of an attempt whose outline was lost arrives before any outline is stored.
    await store.apply(sheet(lost))
    assert ((await store.read_story(sid)).model_dump())["character_sheet"]["status"] == "ready"
    # The outline that was kept has other characters: its own sheet is awaited instead.
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    assert ((await store.read_story(sid)).model_dump())["character_sheet"] == {
        "status": "pending",
        "url": None,
    }
    # A late copy of the lost sheet, or its failure, changes nothing.
    assert (await store.apply(sheet(lost))).events == []
    error = c.ErrorInfo(code="image_failed", message="x")
    failed = c.ImageFailed(story_id=sid, page=c.SHEET_PAGE, error=error, sheet=lost)
    assert (await store.apply(failed)).events == []
    changes = await store.apply(sheet(key))
    assert [e.type for e in changes.events] == ["story.sheet.done"]
    drawn = ((await store.read_story(sid)).model_dump())["character_sheet"]
    assert drawn["status"] == "ready" and drawn["url"].endswith(f"sheet-{key}.webp")


def waiting(sid: str, page: int, tries: int, reason: str = "llm_busy", attempt: int = 1) -> c.PageWaiting:
    return c.PageWaiting(
        story_id=sid,
        page=page,
        attempt=attempt,
        tries=tries,
        reason=reason,  # type: ignore[arg-type]
        retry_in=12.0,
        retry_at=1_900_000_000.0,
    )


async def test_a_waiting_page_says_so_until_moonshot_answers_again(store: Store) -> None:
    sid = await new_story(store)
    changes = await store.apply(waiting(sid, 0, tries=1))
    assert [(e.type, e.data["reason"], e.data["retry_in"]) for e in changes.events] == [
        ("page.waiting", "llm_busy", 12.0)
    ]
    assert changes.events[0].data["retry_at"].startswith("2030-03-17T")
    # A reader who reloads sees it too.
    page = ((await store.read_story(sid)).model_dump())["pages"][0]
    assert page["status"] == "writing"
    assert page["waiting"] == {
        "reason": "llm_busy",
        "tries": 1,
        "retry_in": 12.0,
        "retry_at": changes.events[0].data["retry_at"],
    }
    # Redelivered, or older news arriving late: nothing changes.
    assert (await store.apply(waiting(sid, 0, tries=1))).events == []
    later = await store.apply(waiting(sid, 0, tries=2, reason="llm_unreachable"))
    assert [e.type for e in later.events] == ["page.waiting"]
    assert (await store.apply(waiting(sid, 0, tries=1))).events == []
    assert ((await store.read_story(sid)).model_dump())["pages"][0]["waiting"]["reason"] == "llm_unreachable"

    resumed = await store.apply(c.PageResumed(story_id=sid, page=0, tries=3))
    assert [e.type for e in resumed.events] == ["page.resumed"]
    assert (await store.apply(c.PageResumed(story_id=sid, page=0, tries=3))).events == []
    assert ((await store.read_story(sid)).model_dump())["pages"][0]["waiting"] is None


async def test_waiting_ends_with_the_page_and_never_touches_another_attempt(store: Store) -> None:
    sid = await new_story(store)
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    await store.apply(waiting(sid, 0, tries=1))
    await write_page(store, sid, 0)
    assert ((await store.read_story(sid)).model_dump())["pages"][0]["waiting"] is None
    assert (await store.apply(waiting(sid, 0, tries=2))).events == [], "the page is written"

    await store.choose(sid, page=0, choice=0, action=None)
    await store.apply(waiting(sid, 1, tries=1, reason="llm_unreachable"))
    failed = c.ErrorInfo(code="llm_unavailable", message="m")
    await store.apply(c.PageFailed(story_id=sid, page=1, error=failed))
    assert ((await store.read_story(sid)).model_dump())["pages"][1]["waiting"] is None
    # The reader asks for the page again: news of the failed attempt is stale.
    await store.retry_page(sid, page=1)
    assert (await store.apply(waiting(sid, 1, tries=3, attempt=1))).events == []
    fresh = await store.apply(waiting(sid, 1, tries=1, attempt=2))
    assert [e.type for e in fresh.events] == ["page.waiting"]
    assert ((await store.read_story(sid)).model_dump())["pages"][1]["waiting"]["tries"] == 1


async def test_the_characters_can_be_drawn_again_after_their_sheet_failed(store: Store) -> None:
    sid = await new_story(store)
    with pytest.raises(Conflict, match="not written yet"):
        await store.redraw_sheet(sid)
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    key = c.sheet_key(OUTLINE.characters, OUTLINE.style)
    with pytest.raises(Conflict, match="being drawn already"):
        await store.redraw_sheet(sid)
    error = c.ErrorInfo(code="image_content_policy", message="x")
    await store.apply(c.ImageFailed(story_id=sid, page=c.SHEET_PAGE, error=error, sheet=key))
    assert ((await store.read_story(sid)).model_dump())["character_sheet"]["status"] == "failed"

    changes = await store.redraw_sheet(sid)
    assert [e.type for e in changes.events] == ["story.sheet.started"]
    [task] = [o.body for o in changes.outbox if o.body.get("kind") == "sheet"]
    assert task["sheet"] == key and task["page"] == c.SHEET_PAGE and task["request"]
    assert "a small white rabbit with a red scarf" in task["prompt"]
    assert ((await store.read_story(sid)).model_dump())["character_sheet"]["status"] == "pending"
    drawn = c.ImageReady(story_id=sid, page=c.SHEET_PAGE, media_path=f"{sid}/sheet-{key}.webp", sheet=key)
    assert [e.type for e in (await store.apply(drawn)).events] == ["story.sheet.done"]
    with pytest.raises(Conflict, match="drawn already"):
        await store.redraw_sheet(sid)


async def test_a_page_that_failed_before_its_picture_was_asked_for_waits_for_none(store: Store) -> None:
    sid = await new_story(store)
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    error = c.ErrorInfo(code="llm_auth", message="x")
    await store.apply(c.PageFailed(story_id=sid, page=0, error=error))
    page = ((await store.read_story(sid)).model_dump())["pages"][0]
    assert page["status"] == "failed" and page["image"]["status"] == "none"
    # Written again: its picture is awaited again.
    await store.retry_page(sid, page=0)
    assert ((await store.read_story(sid)).model_dump())["pages"][0]["image"]["status"] == "pending"


async def test_a_page_that_failed_after_its_picture_was_asked_for_still_gets_it(store: Store) -> None:
    sid = await new_story(store)
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    await store.apply(c.ImageRequested(story_id=sid, page=0, prompt="a rabbit"))
    await store.apply(c.PageFailed(story_id=sid, page=0, error=c.ErrorInfo(code="llm_failed", message="x")))
    assert ((await store.read_story(sid)).model_dump())["pages"][0]["image"]["status"] == "pending"
    await store.apply(c.ImageReady(story_id=sid, page=0, media_path=f"{sid}/p0.webp"))
    assert ((await store.read_story(sid)).model_dump())["pages"][0]["image"]["status"] == "ready"


async def test_usage_counts_calls_per_upstream(store: Store) -> None:
    sid = await new_story(store)
    await store.apply(c.UsageReport(story_id=sid, llm_calls=2, tokens_in=10, tokens_out=5))
    await store.apply(c.UsageReport(story_id=sid, image_calls=3, pictures=1, provider="ark"))
    await store.apply(c.UsageReport(story_id=sid, image_calls=1, provider="jimeng"))
    usage = (await store.usage(days=1)).model_dump(exclude_none=True)
    assert usage["upstreams"] == {
        "moonshot": {"calls": 2, "pictures": 0},
        "ark": {"calls": 3, "pictures": 1},
        "jimeng": {"calls": 1, "pictures": 0},
    }
    assert usage["totals"]["image_calls"] == 4 and usage["days"][0]["upstreams"]["ark"]["calls"] == 3


async def test_a_batch_of_results_is_each_result_applied_in_its_order(store: Store) -> None:
    a, b = await new_story(store, pages=2), await new_story(store, pages=2)
    batch: list[c.Contract] = [
        c.OutlineReady(story_id=a, outline=OUTLINE),
        c.OutlineReady(story_id=b, outline=OUTLINE),
        c.PageTextDone(story_id=a, page=0, text="第0页", choices=["左", "右"], image_prompt="p"),
        c.OutlineReady(story_id=a, outline=OUTLINE),  # a duplicate in the same batch
        c.UsageReport(story_id=b, tokens_in=5, llm_calls=1),
        c.PageTextDone(story_id="0" * 32, page=0, text="x", choices=["y"], image_prompt="p"),
        c.UsageReport(story_id=a, tokens_in=7, llm_calls=2, image_calls=1, pictures=1, provider="ark"),
    ]
    applied = await store.apply_many(batch)
    assert [None if ch is None else [e.type for e in ch.events] for ch in applied] == [
        ["story.outlined"],
        ["story.outlined"],
        ["page.text.done"],
        [],
        [],
        None,  # no such story: nothing else in the batch is lost for it
        [],
    ]
    assert [ch.last_seq for ch in applied if ch is not None] == [2, 2, 3, 3, 2, 3]
    assert [row.body["page"] for ch in applied if ch is not None for row in ch.outbox] == [0, 0]
    for sid, seqs in ((a, [1, 2, 3]), (b, [1, 2])):
        assert [e["seq"] for e in await store.events_after(sid, 0)] == seqs
    usage = (await store.usage(days=1)).model_dump(exclude_none=True)
    assert usage["totals"]["tokens_in"] == 12 and usage["totals"]["llm_calls"] == 3
    assert usage["upstreams"] == {"ark": {"calls": 1, "pictures": 1}, "moonshot": {"calls": 3, "pictures": 0}}
    assert (await store.read_story(a)).model_dump()["usage"]["tokens_in"] == 7


async def test_a_batch_costs_the_same_statements_for_eight_stories_as_for_one(store: Store) -> None:
    """Each statement is a round trip through a busy event loop: a batch's must not grow
    with its stories (the pages it loads must be the ones its results find)."""

    async def statements_for(stories: int) -> list[str]:
        ids = [await new_story(store) for _ in range(stories)]
        await store.apply_many([c.OutlineReady(story_id=s, outline=OUTLINE) for s in ids])
        batch: list[c.Contract] = []
        for sid in ids:
            batch += [
                c.ImageRequested(story_id=sid, page=0, prompt="p", attempt=1),
                c.UsageReport(story_id=sid, llm_calls=1, tokens_out=80),
                c.PageTextDone(story_id=sid, page=0, text="第0页", choices=["左", "右"], image_prompt="p"),
            ]
        seen: list[str] = []

        def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
            seen.append(" ".join(statement.split()[:3]))

        event.listen(store.engine.sync_engine, "before_cursor_execute", record)
        try:
            applied = await store.apply_many(batch)
        finally:
            event.remove(store.engine.sync_engine, "before_cursor_execute", record)
        assert all(ch is not None and ch.events for ch in applied[::3]), "every story changed"
        return seen

    one, eight = await statements_for(1), await statements_for(8)
    assert len(eight) == len(one), f"8 stories: {eight}\n1 story: {one}"
    assert sum(s.startswith("SELECT pages") for s in eight) == 1


async def test_the_hero_travels_with_the_story_and_its_pictures_are_described(store: Store) -> None:
    sid, token, changes = await store.create_story(
        premise="a fox",
        age=6,
        language="en",
        style="crayon",
        total_pages=3,
        story_id="hero-story",
        hero_name="Pip",
        hero_path="hero-story/hero.jpg",
    )
    assert sid == "hero-story"
    [outline_task] = [o.body for o in changes.outbox]
    assert outline_task["brief"]["hero_name"] == "Pip"
    assert outline_task["brief"]["hero_picture"] == "hero-story/hero.jpg"
    await store.apply(c.OutlineReady(story_id=sid, outline=OUTLINE))
    # The sheet drawn again is drawn from the child's picture too.
    key = c.sheet_key(OUTLINE.characters, OUTLINE.style)
    error = c.ErrorInfo(code="image_content_policy", message="x")
    await store.apply(c.ImageFailed(story_id=sid, page=c.SHEET_PAGE, error=error, sheet=key))
    [task] = [o.body for o in (await store.redraw_sheet(sid)).outbox if o.body.get("kind") == "sheet"]
    assert task["hero"] == "hero-story/hero.jpg"

    # The library says the story waits for the reader once a page offers its choices.
    [summary] = await store.summaries([(sid, token)])
    assert summary.awaiting_choice is False, "the first page is still being written"
    done = c.PageTextDone(
        story_id=sid,
        page=0,
        text="Pip woke up.",
        choices=["a", "b"],
        image_prompt="p",
        alt="Pip yawns in bed.",
    )
    [event] = [e for e in (await store.apply(done)).events if e.type == "page.text.done"]
    assert event.data["alt"] == "Pip yawns in bed."
    assert (await store.read_story(sid)).pages[0].alt == "Pip yawns in bed."
    [summary] = await store.summaries([(sid, token)])
    assert summary.awaiting_choice is True
    await store.choose(sid, page=0, choice=0, action=None)
    [summary] = await store.summaries([(sid, token)])
    assert summary.awaiting_choice is False, "chosen: the writer's turn"
