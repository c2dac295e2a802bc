"""The fake Moonshot's writer: small, real stories built from the story context.

The llm_worker's prompts put the facts after a `STORY_CONTEXT_JSON:` line. This
module reads them and writes what a good model would: an outline, or one page as
`{"illustration", "text", "choices", "alt"}` in that order, in Chinese or English. The
story follows the premise (the hero's species and the place come from it), the
outline's character names, the page number and the reader's choice, and ends
properly on the last page. Everything is seeded from a hash of the input, so the
same request always gets the same answer, which keeps tests and demos repeatable.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from typing import Any

# Must equal services.llm_worker.prompts.CONTEXT_MARKER (a test checks it). It is
# not imported: the fake stands in for a remote service and should not need the
# client's code to run.
CONTEXT_MARKER = "STORY_CONTEXT_JSON:"

ZH_MIN, ZH_MAX = 40, 120


def answer(user_message: str, *, json_mode: bool) -> str:
    """The assistant's reply to the last user message."""
    context = read_context(user_message)
    if context is not None:
        if context.get("task") == "outline":
            return json.dumps(outline(context), ensure_ascii=False)
        if context.get("task") == "page":
            return json.dumps(page(context), ensure_ascii=False)
        if context.get("task") == "classify":
            return json.dumps(judge(context), ensure_ascii=False)
    if json_mode:
        return "{}"
    if re.search(r"[\u4e00-\u9fff]", user_message):
        return "你好！我是离线的 Moonshot 替身，可以帮你写故事大纲和故事的每一页。"
    return (
        "Hello! I am the offline stand-in for Moonshot. "
        "Ask me for a story outline or a page and I will write one."
    )


def read_context(user_message: str) -> dict[str, Any] | None:
    _, marker, rest = user_message.partition(CONTEXT_MARKER)
    if not marker:
        return None
    try:
        value = json.loads(rest.strip())
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


# ------------------------------------------------------------------------ material


@dataclass(frozen=True)
class Species:
    zh: str  # as the story calls it: 小刺猬
    measure: str  # 一只 / 一头 / 一条
    en: str
    look: str  # English, for the illustrator
    zh_words: tuple[str, ...]
    en_words: tuple[str, ...]


SPECIES: tuple[Species, ...] = (
    Species(
        "小刺猬",
        "只",
        "hedgehog",
        "a small round hedgehog with soft brown spines, a pink button nose and a red knitted scarf",
        ("刺猬",),
        ("hedgehog",),
    ),
    Species(
        "小兔子",
        "只",
        "rabbit",
        "a little white rabbit with long floppy ears, rosy cheeks and blue dungarees",
        ("兔子", "小兔", "兔"),
        ("rabbit", "bunny", "hare"),
    ),
    Species(
        "熊猫宝宝",
        "只",
        "panda",
        "a chubby baby panda with black eye patches and a bamboo-green bandana",
        ("熊猫",),
        ("panda",),
    ),
    Species(
        "小熊",
        "只",
        "bear",
        "a chubby brown bear cub with a cream belly and a yellow rain hat",
        ("小熊", "熊"),
        ("bear", "teddy"),
    ),
    Species(
        "小狐狸",
        "只",
        "fox",
        "a small orange fox with a white-tipped tail and a green backpack",
        ("狐狸",),
        ("fox",),
    ),
    Species(
        "猫头鹰",
        "只",
        "owl",
        "a round brown owl with big golden eyes and tiny round glasses",
        ("猫头鹰",),
        ("owl",),
    ),
    Species(
        "小猫",
        "只",
        "kitten",
        "a fluffy grey kitten with white paws, big green eyes and a little bell collar",
        ("小猫", "猫咪", "猫"),
        ("cat", "kitten", "kitty"),
    ),
    Species(
        "小狗",
        "只",
        "puppy",
        "a floppy-eared beige puppy with a brown patch over one eye and a red collar",
        ("小狗", "狗"),
        ("dog", "puppy"),
    ),
    Species(
        "小恐龙",
        "只",
        "dinosaur",
        "a little purple dinosaur with orange back spikes and a striped scarf",
        ("恐龙",),
        ("dinosaur", "dino"),
    ),
    Species(
        "小龙",
        "条",
        "dragon",
        "a small friendly green dragon with round wings, tiny horns and a yellow belly",
        ("龙",),
        ("dragon",),
    ),
    Species(
        "小企鹅",
        "只",
        "penguin",
        "a small penguin with a fluffy grey chest, an orange beak and a blue woolly hat",
        ("企鹅",),
        ("penguin",),
    ),
    Species(
        "小鸭子",
        "只",
        "duckling",
        "a yellow duckling with an orange beak and a tiny sailor hat",
        ("鸭子", "小鸭", "鸭"),
        ("duck", "duckling"),
    ),
    Species(
        "小松鼠",
        "只",
        "squirrel",
        "a red squirrel with a huge bushy tail and a little acorn-shaped bag",
        ("松鼠",),
        ("squirrel",),
    ),
    Species(
        "小老鼠",
        "只",
        "mouse",
        "a tiny grey mouse with big round ears, a long tail and a patched yellow coat",
        ("老鼠", "小鼠"),
        ("mouse", "mice"),
    ),
    Species(
        "小象",
        "头",
        "elephant",
        "a baby elephant, soft blue-grey, with big flappy ears and a pink bow",
        ("大象", "小象"),
        ("elephant",),
    ),
    Species(
        "小乌龟",
        "只",
        "turtle",
        "a little green turtle with a patterned shell and a striped bobble hat",
        ("乌龟", "龟"),
        ("turtle", "tortoise"),
    ),
    Species(
        "小青蛙",
        "只",
        "frog",
        "a bright green frog with a wide smile and a tiny gold crown",
        ("青蛙", "蛙"),
        ("frog",),
    ),
    Species(
        "小机器人",
        "个",
        "robot",
        "a small round silver robot with a glowing blue chest light and a springy antenna",
        ("机器人",),
        ("robot",),
    ),
    Species(
        "小鲸鱼",
        "条",
        "whale",
        "a little blue whale with a pale belly and a cheerful water spout",
        ("鲸鱼", "鲸"),
        ("whale",),
    ),
)

# Friends are drawn from the gentler, easy-to-draw half of the cast.
FRIENDS = tuple(
    s
    for s in SPECIES
    if s.en
    in {
        "rabbit",
        "fox",
        "owl",
        "kitten",
        "puppy",
        "duckling",
        "squirrel",
        "mouse",
        "turtle",
        "frog",
    }
)

NAMES_ZH = ("团团", "豆豆", "米米", "乐乐", "朵朵", "跳跳", "球球", "果果", "糖糖", "皮皮")
NAMES_EN = ("Pip", "Luna", "Milo", "Hazel", "Toby", "Rosie", "Benny", "Juno", "Olive", "Finn")


@dataclass(frozen=True)
class Place:
    zh: str
    zh_in: str  # 在……里 / 在……上, as a sentence uses it
    en: str
    zh_words: tuple[str, ...]
    en_words: tuple[str, ...]


PLACES: tuple[Place, ...] = (
    Place(
        "星星闪闪的小山谷",
        "在星星闪闪的小山谷里",
        "a quiet valley under twinkling stars",
        ("星", "月亮", "夜", "黑"),
        ("star", "stars", "moon", "night", "dark"),
    ),
    Place(
        "蓝蓝的大海边",
        "在蓝蓝的大海边",
        "a sunny seaside with little blue waves",
        ("海", "沙滩", "鲸"),
        ("sea", "ocean", "beach", "seaside", "whale"),
    ),
    Place(
        "白雪皑皑的小村庄",
        "在白雪皑皑的小村庄里",
        "a snowy little village",
        ("雪", "冰", "冬"),
        ("snow", "snowy", "ice", "winter"),
    ),
    Place(
        "五颜六色的大花园",
        "在五颜六色的大花园里",
        "a big colourful garden",
        ("花园", "花"),
        ("garden", "flower", "flowers"),
    ),
    Place(
        "热热闹闹的小镇",
        "在热热闹闹的小镇上",
        "a busy little town",
        ("小镇", "城市", "村"),
        ("town", "city", "village"),
    ),
    Place(
        "绿油油的大草地",
        "在绿油油的大草地上",
        "a wide green meadow",
        ("草地", "草原"),
        ("meadow", "field", "grass"),
    ),
    Place(
        "开满野花的大森林",
        "在开满野花的大森林里",
        "a big forest full of wildflowers",
        ("森林", "树林", "树"),
        ("forest", "wood", "woods", "tree", "trees"),
    ),
)


@dataclass(frozen=True)
class Option:
    """A choice at the end of a page and how the next page begins if it is taken."""

    zh: str
    en: str
    zh_after: str
    en_after: str


@dataclass(frozen=True)
class Beat:
    """One small adventure: a page poses it, the reader picks how it goes."""

    arc_zh: str
    arc_en: str
    zh: str
    en: str
    picture: str
    options: tuple[Option, ...]


# {h}/{f}: hero and friend names (zh); {H}/{F}: the same in English text.
BEATS: tuple[Beat, ...] = (
    Beat(
        "在小河边想办法过河",
        "find a way across a little river",
        "走着走着，一条哗哗的小河挡住了去路。河水凉凉的，{h}和{f}站在岸边想办法。",
        "Soon a bubbling little river blocked the path. {H} and {F} stood on the bank and thought hard.",
        "{H} and {F} stand at the edge of a sparkling little river, wondering how to cross, "
        "curious and hopeful.",
        (
            Option(
                "踩着石头跳过去",
                "hop across on the stones",
                "他们踩着圆圆的石头，一、二、三，稳稳地跳到了对岸。",
                "They hopped from stone to stone, one, two, three, and landed safely on the other side.",
            ),
            Option(
                "请小鸭子帮忙",
                "ask the ducks for help",
                "一群小鸭子游过来，排成一座小桥，让他们轻轻走了过去。",
                "A line of friendly ducks paddled over and made a wobbly little bridge for them.",
            ),
            Option(
                "做一只树叶小船",
                "make a leaf boat",
                "他们用一片大大的树叶做成小船，慢慢漂到了对岸。",
                "They folded a giant leaf into a boat and floated gently to the other side.",
            ),
        ),
    ),
    Beat(
        "跟着萤火虫的小光",
        "meet a crowd of dancing fireflies",
        "天色慢慢暗了，草丛里忽然亮起一点一点的小光。原来是一群萤火虫在跳舞！",
        "The sky grew dusky, and tiny lights blinked in the grass. A crowd of fireflies was dancing!",
        "{H} and {F} watch a swirl of glowing fireflies dance above the dusky grass, full of wonder.",
        (
            Option(
                "跟着萤火虫走",
                "follow the fireflies",
                "萤火虫一闪一闪，把他们带到了一片亮晶晶的草地。",
                "The fireflies blinked the way to a meadow that sparkled like a jar of stars.",
            ),
            Option(
                "和萤火虫一起跳舞",
                "dance with the fireflies",
                "{h}转呀转，{f}跳呀跳，大家笑成了一团。",
                "{H} twirled and {F} jumped, and soon everyone was giggling.",
            ),
            Option(
                "问萤火虫一个问题",
                "ask the fireflies a question",
                "最大的萤火虫眨眨眼说：“往前走，答案就在前面。”",
                'The biggest firefly winked and said, "Keep going. The answer is just ahead."',
            ),
        ),
    ),
    Beat(
        "帮助一只迷路的小鸟",
        "help a little lost bird",
        "一只小鸟坐在大树下，小声地哭。原来，它找不到回家的路了。",
        "Under a big tree sat a little bird, sniffling. It could not find its way home.",
        "{H} and {F} kneel beside a small teary bluebird under a big tree, kind and gentle.",
        (
            Option(
                "帮小鸟找妈妈",
                "help the bird find its mom",
                "他们大声呼唤，鸟妈妈很快飞来了，高兴地拍着翅膀说谢谢。",
                "They called and called, and soon Mama Bird swooped down, flapping her wings "
                "to say thank you.",
            ),
            Option(
                "给小鸟唱首歌",
                "sing the bird a song",
                "{h}唱起了轻轻的歌，小鸟不哭了，还跟着一起哼。",
                "{H} sang a soft, silly song, and the little bird stopped crying and hummed along.",
            ),
            Option(
                "把小鸟送回树上",
                "lift the bird up to its nest",
                "{f}踮起脚，把小鸟轻轻送回了树上的窝里。",
                "{F} stood on tiptoe and lifted the bird gently back into its nest.",
            ),
        ),
    ),
    Beat(
        "发现一张旧地图",
        "find an old treasure map",
        "{f}在一块石头下面发现了一张旧旧的地图，上面画着一个红色的小叉。",
        "Under a mossy stone, {F} found an old, crinkly map with a little red X on it.",
        "{F} holds up an old crinkly map with a red X while {H} peeks over, excited.",
        (
            Option(
                "跟着地图走",
                "follow the map",
                "他们照着地图，绕过三棵大树，找到了一个装满贝壳的小木盒。",
                "They followed the map past three tall trees and found a little wooden box "
                "full of shiny shells.",
            ),
            Option(
                "把地图折成纸飞机",
                "fold the map into a paper plane",
                "纸飞机呼地飞上天，又轻轻落下，正好指向前面的路。",
                "The paper plane swooshed up high and floated down, pointing straight at the path ahead.",
            ),
            Option(
                "请乌龟爷爷看地图",
                "show the map to Grandpa Turtle",
                "乌龟爷爷看了看地图，笑眯眯地告诉他们一条近路。",
                "Old Grandpa Turtle peered at the map and smiled, then showed them a shortcut.",
            ),
        ),
    ),
    Beat(
        "遇到一场大雨",
        "get caught in a sudden shower",
        "突然，天上飘来一朵大乌云，哗啦啦下起了雨。",
        "Suddenly a big grey cloud drifted over, and pitter-patter, down came the rain.",
        "{H} and {F} look up at a big grey raincloud as the first drops fall, surprised but cosy.",
        (
            Option(
                "躲到大蘑菇下面",
                "hide under a big mushroom",
                "他们躲到一朵大蘑菇下面，听着雨点滴滴答答地唱歌。",
                "They huddled under a giant mushroom and listened to the raindrops sing.",
            ),
            Option(
                "在雨里踩水坑",
                "splash in the puddles",
                "啪嗒！啪嗒！他们在水坑里跳来跳去，溅起好多小水花。",
                "Splish! Splash! They jumped in every puddle and sent up sparkly little fountains.",
            ),
            Option(
                "用树叶当雨伞",
                "use a leaf as an umbrella",
                "{f}举起一片大树叶，两个好朋友挤在下面，一点也没淋湿。",
                "{F} held up a huge leaf, and the two friends squeezed underneath, dry as toast.",
            ),
        ),
    ),
    Beat(
        "爬上闪闪发光的山坡",
        "reach the top of a twinkling hill",
        "前面有一座高高的山坡，山顶上好像有什么东西在闪闪发光。",
        "Ahead rose a tall, grassy hill, and at the very top something was twinkling.",
        "{H} and {F} gaze up a tall grassy hill with something twinkling at the top, determined.",
        (
            Option(
                "一步一步爬上去",
                "climb up step by step",
                "他们一步一步往上爬，累了就歇一歇，终于站到了山顶。",
                "They climbed step by step, resting when they were tired, until they stood on the very top.",
            ),
            Option(
                "从山坡上滚下来",
                "roll down the hill",
                "骨碌碌，骨碌碌！他们从草坡上滚下来，笑得停不下来。",
                "Roly-poly, roly-poly! They rolled down the soft grass, laughing all the way.",
            ),
            Option(
                "坐上大风筝",
                "ride a big kite",
                "一阵风吹来，大风筝带着他们轻轻飞上了山顶。",
                "A breeze caught a big kite, and it carried them gently to the hilltop.",
            ),
        ),
    ),
    Beat(
        "在小山洞前听见呼噜声",
        "hear a snore from a little cave",
        "他们来到一个小山洞前，里面传来呼噜呼噜的声音。",
        "They came to a small cave, and from inside came a rumbly snore.",
        "{H} and {F} tiptoe towards the round mouth of a little cave, curious and careful.",
        (
            Option(
                "轻轻走进去看看",
                "tiptoe inside to look",
                "原来是一只熊宝宝在睡午觉，它揉揉眼睛，和他们做了朋友。",
                "It was only a baby bear having a nap. It rubbed its eyes, yawned, and became their friend.",
            ),
            Option(
                "在洞口唱摇篮曲",
                "sing a lullaby at the door",
                "歌声软软的，洞里的呼噜声也变得甜甜的。",
                "The lullaby was so soft that even the snoring turned sweet and quiet.",
            ),
            Option(
                "留下一个苹果当礼物",
                "leave an apple as a gift",
                "他们在洞口放了一个红苹果，不一会儿，洞里传出一声开心的“谢谢！”",
                'They left a shiny red apple by the door, and soon a happy voice called, "Thank you!"',
            ),
        ),
    ),
    Beat(
        "捡到一颗会发光的石头",
        "find a glowing pebble from the sky",
        "一颗亮亮的小石头从天上掉下来，落在{h}的脚边，暖暖的，还在发光。",
        "A bright little pebble fell from the sky and landed by {H}'s feet, warm and glowing.",
        "{H} and {F} bend over a softly glowing pebble lying in the grass, amazed.",
        (
            Option(
                "把石头放进口袋",
                "keep it in a pocket",
                "小石头在口袋里暖暖的，好像在说：“我陪着你。”",
                'The pebble felt warm in the pocket, as if it were saying, "I am right here with you."',
            ),
            Option(
                "把石头还给天空",
                "give it back to the sky",
                "{h}把小石头高高举起，它嗖地飞回天上，变成了一颗眨眼睛的星星。",
                "{H} held the pebble up high, and whoosh, it flew home and became a winking star.",
            ),
            Option(
                "用石头照亮前路",
                "use it to light the way",
                "小石头发出柔柔的光，照亮了前面弯弯的小路。",
                "The pebble glowed softly and lit up the winding path ahead.",
            ),
        ),
    ),
    Beat(
        "帽子被风吹上了树",
        "chase a hat the wind blew away",
        "一阵大风吹来，把{f}的帽子吹到了高高的树枝上。",
        "A gust of wind whooshed by and blew {F}'s hat up into a tall tree.",
        "{F}'s hat dangles from a high branch while {H} and {F} look up, puzzled.",
        (
            Option(
                "爬树把帽子拿下来",
                "climb the tree",
                "{h}小心地爬上树，把帽子拿了下来，{f}开心地拍起手。",
                "{H} climbed up carefully and brought the hat back down, and {F} clapped happily.",
            ),
            Option(
                "请松鼠帮忙",
                "ask a squirrel for help",
                "一只松鼠跳上树枝，把帽子叼了下来，还在里面放了一颗松果。",
                "A squirrel scampered up, fetched the hat, and left a pinecone inside as a present.",
            ),
            Option(
                "等风把帽子吹下来",
                "wait for the wind",
                "他们耐心地等，风又吹来了，帽子轻飘飘地落回{f}的头上。",
                "They waited patiently, and the next breeze floated the hat right back onto {F}'s head.",
            ),
        ),
    ),
    Beat(
        "肚子饿了找吃的",
        "find something yummy to eat",
        "走了好久，大家的肚子咕咕叫了起来。",
        "After a long walk, their tummies began to rumble.",
        "{H} and {F} sit on a log holding their rumbling tummies, looking around hopefully.",
        (
            Option(
                "摘野莓吃",
                "pick wild berries",
                "他们摘了一篮红红的野莓，酸酸甜甜，真好吃！",
                "They picked a basket of red berries, sweet and a little sour. Yum!",
            ),
            Option(
                "分享带来的饼干",
                "share the cookies",
                "{h}拿出饼干，掰成两半，一半给{f}，一半给自己。",
                "{H} took out a cookie, broke it in half, and shared it with {F}.",
            ),
            Option(
                "办一个小小野餐",
                "have a tiny picnic",
                "他们铺开手帕，办了一场小小的野餐，连蚂蚁也来做客了。",
                "They spread out a handkerchief for a tiny picnic, and even the ants came to visit.",
            ),
        ),
    ),
)


@dataclass(frozen=True)
class Ending:
    zh: str
    en: str
    picture: str


ENDINGS: tuple[Ending, ...] = (
    Ending(
        "太阳下山了，{h}和{f}手拉手回到了家。{h}笑着说：“今天真开心，明天我们还一起玩！”（完）",
        'As the sun went down, {H} and {F} walked home hand in hand. "What a happy day," '
        'said {H}. "Let\'s play again tomorrow!" The End.',
        "{H} and {F} walk home hand in hand under a warm orange sunset, happy and cosy.",
    ),
    Ending(
        "最后，他们找到了回家的路，妈妈给了{h}一个大大的拥抱。"
        "{h}明白了：有好朋友在身边，就什么都不怕。（完）",
        "At last they found the way home, and {H} got the biggest hug of all. {H} knew now "
        "that with a good friend nearby, nothing is too scary. The End.",
        "{H} gets a big warm hug at the door of a cosy little house while {F} waves, golden evening light.",
    ),
    Ending(
        "星星一颗颗亮了，{h}和{f}躺在草地上数星星。"
        "这是最棒的一次冒险！从那以后，他们一直是最好的朋友。（完）",
        "The stars came out one by one, and {H} and {F} lay in the grass counting them. "
        "It had been the best adventure ever, and they stayed best friends forever. The End.",
        "{H} and {F} lie on soft grass counting twinkling stars in a deep blue night sky, "
        "peaceful and happy.",
    ),
)

FEELINGS_ZH = (
    "{h}有一点紧张，可是{f}紧紧拉住了{h}的手。",
    "{f}眨眨眼睛：“我们该怎么办呢？”",
    "{h}深深吸了一口气，笑了。",
)
FEELINGS_EN = (
    "{H} felt a little nervous, but {F} held on tight.",
    '"What shall we do?" asked {F}.',
    "{H} took a deep breath and smiled.",
)


# ------------------------------------------------------------------------ outline


def outline(ctx: dict[str, Any]) -> dict[str, Any]:
    lang = _language(ctx)
    premise = str(ctx.get("premise") or "")
    total = _total_pages(ctx)
    hero, friend = _cast(premise, lang)
    named = ctx.get("hero_name")
    if isinstance(named, str) and named.strip():  # the child named their own hero
        hero = Person(named.strip()[:30], hero.species)
    place = _place_from_premise(premise)
    names = {"h": hero.name, "f": friend.name, "H": hero.name, "F": friend.name}
    rng = _rng("title", premise, lang)
    if lang == "zh":
        title = rng.choice(("{h}的奇妙旅程", "{h}和{f}", "勇敢的{h}", "{h}去冒险")).format(**names)
        start, end = "{h}和{f}出发，", "{h}和{f}开开心心回到家，故事温暖地结束"
    else:
        title = rng.choice(
            ("{H}'s Wonderful Journey", "{H} and {F}", "Brave Little {H}", "{H} Sets Off")
        ).format(**names)
        start, end = "{H} and {F} set off and ", "{H} and {F} come home happy: a warm ending"
    beats = _beat_order(premise, lang)
    arc = [_arc_of(beats[i % len(beats)], lang) for i in range(total - 1)]
    if arc:
        arc[0] = start.format(**names) + arc[0]
    arc.append(end.format(**names))
    return {
        "title": title,
        "characters": [
            {"name": hero.name, "look": hero.species.look},
            {"name": friend.name, "look": friend.species.look},
        ],
        "style": _style_en(str(ctx.get("style") or "")),
        "setting": place.zh if lang == "zh" else place.en,
        "arc": arc,
    }


@dataclass(frozen=True)
class Person:
    name: str
    species: Species


def _cast(premise: str, lang: str) -> tuple[Person, Person]:
    rng = _rng("cast", premise, lang)
    species = _species_in(premise) or rng.choice(SPECIES)
    friend_species = rng.choice([s for s in FRIENDS if s is not species])
    names = NAMES_ZH if lang == "zh" else NAMES_EN
    hero_name, friend_name = rng.sample(names, 2)
    return Person(hero_name, species), Person(friend_name, friend_species)


def _species_in(text: str) -> Species | None:
    """The first animal the text names; longest word first, so 熊猫 is not 熊."""
    found: list[tuple[int, int, Species]] = []
    lowered = text.lower()
    for sp in SPECIES:
        for word in sp.zh_words:
            at = text.find(word)
            if at >= 0:
                found.append((at, -len(word), sp))
        for word in sp.en_words:
            m = re.search(rf"\b{re.escape(word)}s?\b", lowered)
            if m:
                found.append((m.start(), -len(word), sp))
    if not found:
        return None
    return min(found, key=lambda f: (f[0], f[1]))[2]


def _place_from_premise(premise: str) -> Place:
    lowered = premise.lower()
    for place in PLACES:
        if any(w in premise for w in place.zh_words) or any(
            re.search(rf"\b{re.escape(w)}\b", lowered) for w in place.en_words
        ):
            return place
    return _rng("place", premise).choice(PLACES)


_STYLE_WORDS = {
    "水彩": "watercolour",
    "蜡笔": "crayon",
    "油画": "oil painting",
    "剪纸": "paper-cut",
    "卡通": "cartoon",
    "铅笔": "coloured pencil",
    "彩铅": "coloured pencil",
    "粘土": "clay",
    "国画": "Chinese ink painting",
    "水墨": "Chinese ink painting",
    "像素": "pixel art",
}


def _style_en(style: str) -> str:
    # The illustrator reads English best (the prompt says so), so a Chinese style
    # name is translated, or replaced by a safe default when it is not known.
    if re.search(r"[^\x00-\x7f]", style):
        known = [en for zh, en in _STYLE_WORDS.items() if zh in style]
        style = " and ".join(dict.fromkeys(known)) or "gentle watercolour"
    style = style.strip() or "gentle watercolour"
    return f"{style}, soft warm colours, rounded friendly shapes, picture-book look"


# ------------------------------------------------------------------------ page


def page(ctx: dict[str, Any]) -> dict[str, Any]:
    lang = _language(ctx)
    premise = str(ctx.get("premise") or "")
    total = _total_pages(ctx)
    index = _page_index(ctx)
    is_last = bool(ctx.get("is_last", index >= total - 1))
    age = _int(ctx.get("age"), 6)
    choice = ctx.get("reader_choice")
    choice = choice.strip() if isinstance(choice, str) and choice.strip() else None
    raw_outline = ctx.get("outline")
    book: dict[str, Any] = raw_outline if isinstance(raw_outline, dict) else {}

    hero, friend = _people(book, premise, lang)
    rng = _rng("page", premise, lang, str(index), choice or "", hero.name)
    names = {"h": hero.name, "f": friend.name, "H": hero.name, "F": friend.name}
    place_in = _place_for(book, premise, lang)

    # (sentence, may it be dropped to keep a Chinese page within 40-120 characters)
    if index == 0:
        parts = _opening(hero, friend, premise, place_in, lang)
    else:
        parts = [(_follow(choice, names, lang), False)]

    if is_last:
        ending = rng.choice(ENDINGS)
        parts.append(((ending.zh if lang == "zh" else ending.en).format(**names), False))
        illustration = ending.picture.format(**names)
        scene = ending.zh.format(**names)
        choices: list[str] = []
    else:
        beat = _beat_for(book, premise, lang, index)
        parts.append(((beat.zh if lang == "zh" else beat.en).format(**names), False))
        if age > 4:
            feelings = FEELINGS_ZH if lang == "zh" else FEELINGS_EN
            parts.append((rng.choice(feelings).format(**names), True))
        illustration = beat.picture.format(**names)
        scene = beat.zh.format(**names)
        options = list(beat.options)
        rng.shuffle(options)
        count = 3 if rng.random() < 0.5 else 2
        choices = [o.zh if lang == "zh" else o.en for o in options[:count]]

    return {
        "illustration": illustration,
        "text": _compose(parts, lang),
        "choices": choices,
        "alt": _alt(illustration, scene, lang),
    }


def _opening(hero: Person, friend: Person, premise: str, place_in: str, lang: str) -> list[tuple[str, bool]]:
    """The first page's first sentences: who, where, how it began, who comes along."""
    parts = [(_intro(hero, place_in, lang), False)]
    short = _premise_short(premise, lang)
    if short:
        opening = f"故事是这样开始的：{short}。" if lang == "zh" else f"Here is how it began: {short}."
        parts.append((opening, True))
    if lang == "zh":
        parts.append((f"这天，{hero.name}和好朋友{friend.species.zh}{friend.name}一起出发了。", False))
    else:
        companion = (
            f"One morning {hero.name} set off with a good friend, {friend.name} the {friend.species.en}."
        )
        parts.append((companion, False))
    return parts


def _alt(illustration: str, scene_zh: str, lang: str) -> str:
    """What the picture shows, in the story's language, as the model writes it."""
    if lang == "en":
        return illustration.rstrip(".") + "."
    first = scene_zh.split("。")[0].strip("“”（完）")
    return f"图里：{first}。"


def _people(book: dict[str, Any], premise: str, lang: str) -> tuple[Person, Person]:
    """Hero and friend from the outline when it names them, else from the premise."""
    hero, friend = _cast(premise, lang)
    named: list[Person] = []
    for c in book.get("characters") or []:
        if isinstance(c, dict) and isinstance(c.get("name"), str) and c["name"].strip():
            look = str(c.get("look") or "")
            species = _species_in(look) or _species_in(c["name"]) or hero.species
            named.append(Person(c["name"].strip(), species))
    if named:
        hero = named[0]
    if len(named) > 1:
        friend = named[1]
    elif friend.name == hero.name:
        names = NAMES_ZH if lang == "zh" else NAMES_EN
        friend = Person(next(n for n in names if n != hero.name), friend.species)
    return hero, friend


def _place_for(book: dict[str, Any], premise: str, lang: str) -> str:
    """Where the story happens, as the first page's sentence needs it."""
    setting = str(book.get("setting") or "").strip()
    for place in PLACES:
        if setting in (place.zh, place.en):
            return place.zh_in if lang == "zh" else place.en
    # A setting written by someone else is used when it is short enough to sit in a
    # sentence; a long description would swamp a 40-120 character page.
    if setting and len(setting) <= (14 if lang == "zh" else 60):
        return f"在{setting}里" if lang == "zh" else setting
    place = _place_from_premise(premise)
    return place.zh_in if lang == "zh" else place.en


def _intro(hero: Person, place_in: str, lang: str) -> str:
    if lang == "zh":
        return f"从前，{place_in}，住着一{hero.species.measure}{hero.species.zh}，名叫{hero.name}。"
    return f"Once upon a time, in {place_in}, there lived a little {hero.species.en} called {hero.name}."


def _follow(choice: str | None, names: dict[str, str], lang: str) -> str:
    """The opening that makes the page visibly follow what the reader chose."""
    if choice is None:
        template = "{h}和{f}继续往前走。" if lang == "zh" else "{H} and {F} walked on together."
        return template.format(**names)
    option = _option_named(choice)
    if option is not None:
        return (option.zh_after if lang == "zh" else option.en_after).format(**names)
    said = choice.rstrip("。！!？?，,.；; ")
    if lang == "zh":
        said = said if len(said) <= 30 else said[:29] + "…"
        return f"“{said}！”{names['h']}说。大家都觉得这是个好主意，马上就这么做了。"
    said = said if len(said) <= 80 else said[:79] + "…"
    said = said[:1].upper() + said[1:]
    return (
        f'"{said}!" said {names["H"]}. Everyone thought it was a splendid idea, '
        "so that is just what they did."
    )


def _option_named(choice: str) -> Option | None:
    wanted = choice.rstrip("。！!？?，,.；; ").lower()
    for beat in BEATS:
        for option in beat.options:
            if wanted in (option.zh, option.en.lower()):
                return option
    return None


def _beat_for(book: dict[str, Any], premise: str, lang: str, index: int) -> Beat:
    arc = book.get("arc")
    if isinstance(arc, list) and index < len(arc) and isinstance(arc[index], str):
        for beat in BEATS:
            if _arc_of(beat, lang) in arc[index]:
                return beat
    order = _beat_order(premise, lang)
    return order[index % len(order)]


def _beat_order(premise: str, lang: str) -> list[Beat]:
    beats = list(BEATS)
    _rng("beats", premise, lang).shuffle(beats)
    return beats


def _arc_of(beat: Beat, lang: str) -> str:
    return beat.arc_zh if lang == "zh" else beat.arc_en


def _premise_short(premise: str, lang: str) -> str:
    first = re.split(r"[。！？；!?;\n]|\.\s", premise.strip(), maxsplit=1)[0].strip(" .,，")
    if lang == "zh":
        if len(first) > 24:
            cut = first[:24].rfind("，")
            first = first[:cut] if cut >= 8 else first[:24]
        return first
    words = first.split()
    return " ".join(words[:14])


def _compose(parts: list[tuple[str, bool]], lang: str) -> str:
    """Join the sentences, dropping optional ones (last first) until a Chinese page fits."""
    sep = "" if lang == "zh" else " "
    kept = list(parts)
    while lang == "zh" and len("".join(t for t, _ in kept)) > ZH_MAX:
        droppable = [i for i, (_, optional) in enumerate(kept) if optional]
        if not droppable:
            break
        kept.pop(droppable[-1])
    return sep.join(t for t, _ in kept)


# ------------------------------------------------------------------------ helpers


def _rng(*parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _language(ctx: dict[str, Any]) -> str:
    return "zh" if ctx.get("language") == "zh" else "en"


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _total_pages(ctx: dict[str, Any]) -> int:
    return max(1, min(_int(ctx.get("total_pages"), 6), 60))


def _page_index(ctx: dict[str, Any]) -> int:
    if "page" in ctx:
        return max(0, _int(ctx.get("page"), 0))
    return max(0, _int(ctx.get("page_number"), 1) - 1)


# ------------------------------------------------------------------------ judgement

# What this stand-in "model" judges unsuitable: a few ideas a word list would miss.
UNSUITABLE_IDEAS = (
    "weapon",
    "poison",
    "beer",
    "drunk",
    "eats children",
    "hurt the",
    "revenge",
    "武器",
    "毒药",
    "喝醉",
    "喝酒",
    "吃掉小孩",
    "报仇",
    "打死",
)


def judge(ctx: dict[str, Any]) -> dict[str, Any]:
    """A suitability verdict in the shape the classification prompt asks for."""
    text = str(ctx.get("text", "")).lower()
    hit = next((idea for idea in UNSUITABLE_IDEAS if idea in text), None)
    if hit:
        return {"suitable": False, "reason": f"not for a picture book: {hit}"}
    return {"suitable": True, "reason": "a gentle story idea"}
