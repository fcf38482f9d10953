"""Compose Kairos's labelled intent set (`intents.csv`) from the phrasebooks in `source/`.

Every message core in `source/en.txt` and `source/zh.txt` was written for Kairos. This script only
varies them the way customers vary what they write: with or without a greeting, some context and a
closing; with order numbers, products and carriers filled in; lower-cased, with typos, emoji or
shouting; Chinese with English words mixed in. Each core keeps its group id, so cross-validation
can keep every variant of one core in the same fold. Deterministic: `python ml/data/compose.py`
rewrites the same file. No Django, no network.
"""

import csv
import random
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "intents.csv"
VARIANTS_PER_CORE = 4
SEED = 17
SENTIMENTS = {"-": "negative", "0": "neutral", "+": "positive"}

EN_TYPOS = {
    "receive": "recieve", "received": "recieved", "address": "adress", "order": "oder", "package": "pakage",
    "tracking": "traking", "cancel": "cancell", "which": "wich", "until": "untill", "definitely": "definately",
    "please": "plz", "refund": "refnd", "delivery": "delivary", "you": "u", "thanks": "thx", "because": "becuase",
    "unsubscribe": "unsubscibe", "really": "realy", "arrived": "arived", "money": "mony",
}  # fmt: skip
ZH_TYPOS = {
    "什么": "啥", "怎么": "咋", "订单": "定单", "已经": "以经", "收到": "受到", "快递": "快第", "退款": "tui款",
    "发货": "fa货", "谢谢": "xx", "地址": "地趾", "在吗": "在嘛", "邮件": "油件", "麻烦": "麻番",
}  # fmt: skip
ZH_MIXED = {
    "订单": "order", "退款": "refund", "快递单号": "tracking number", "尺码": "size", "邮件": "email",
    "退订": "unsubscribe", "客服": "CS", "地址": "address", "好的": "OK", "质量": "quality",
}  # fmt: skip
EMOJI = {
    "negative": ["😡", "😤", "🙄", "😠", "👎", "😞"],
    "neutral": ["🙂", "🙏", "📦", "🤔"],
    "positive": ["😊", "❤️", "👍", "🥰", "🎉", "😍"],
}
EN_ANGRY = ["This is ridiculous.", "Not happy at all.", "Seriously??", "Sort it out!", "Unbelievable."]
ZH_ANGRY = ["太离谱了。", "气死了！", "什么破服务！", "到底怎么回事！", "无语了。"]


def read_phrasebook(path: Path) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Return the shared pools and, per intent, its cores and context sentences."""
    shared: dict[str, list[str]] = {}
    intents: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    items: list[str] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or (line.startswith("#") and not line.startswith(("# shared", "# intent:", "## "))):
            continue
        if line == "# shared":
            section = shared
        elif line.startswith("# intent:"):
            section = intents.setdefault(line.split(":", 1)[1].strip(), {})
        elif line.startswith("## "):
            items = section.setdefault(line[3:].strip(), [])
        else:
            items.append(line)
    return shared, intents


def fill(text: str, shared: dict[str, list[str]], rng: random.Random, language: str) -> str:
    def order_number() -> str:
        shapes = (
            ["#{n5}", "{n5}", "ORD-{n6}", "SO{n7}", "KA-2024-{n4}", "{n12}"]
            if language == "en"
            else ["{n12}", "{n16}", "#{n5}", "DD{n10}", "ORD-{n6}"]
        )
        return rng.choice(shapes).format(
            **{f"n{k}": "".join(rng.choice("0123456789") for _ in range(k)) for k in (4, 5, 6, 7, 10, 12, 16)}
        )

    def tracking() -> str:
        prefix = rng.choice(["1Z", "JD", "SF", "YT", "LP", "RR", "JJD"])
        return prefix + "".join(rng.choice("0123456789") for _ in range(rng.randint(9, 14)))

    def days() -> str:
        return str(rng.choice([3, 5, 6, 8, 10, 12, 14, 20]))

    def date() -> str:
        day, month = rng.randint(1, 28), rng.randint(1, 12)
        if language == "zh":
            return rng.choice([f"{month}月{day}日", f"{month}.{day}", "上周", "上个月", "前天"])
        months = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ]
        return rng.choice([f"{day} {months[month - 1]}", f"{month}/{day}", "last Monday", "last week", f"the {day}th"])

    values = {
        "order": order_number, "tracking": tracking, "days": days, "date": date,
        "product": lambda: rng.choice(shared["products"]), "carrier": lambda: rng.choice(shared["carriers"]),
        "name": lambda: rng.choice(shared["names"]), "city": lambda: rng.choice(shared["cities"]),
        "street": lambda: rng.choice(shared["streets"]),
    }  # fmt: skip
    return re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)](), text)


def typos(text: str, language: str, rng: random.Random) -> str:
    table = EN_TYPOS if language == "en" else ZH_TYPOS
    for right, wrong in table.items():
        if right in text and rng.random() < 0.6:
            text = re.sub(rf"\b{right}\b", wrong, text, count=1) if language == "en" else text.replace(right, wrong, 1)
    if language == "en" and len(text) > 12 and rng.random() < 0.5:
        position = rng.randrange(1, len(text) - 2)
        if text[position].isalpha() and text[position + 1].isalpha():
            text = text[:position] + text[position + 1] + text[position] + text[position + 2 :]
    return text


def vary(core: str, sentiment: str, kind: int, shared, context: list[str], language: str, rng: random.Random) -> str:
    """Return one variant of a core: 0 as written, 1 framed, 2 long, 3 casual and noisy."""
    join = " " if language == "en" else ""
    body = fill(core, shared, rng, language)
    if kind == 0:
        return body
    if kind == 1:
        parts = [rng.choice(shared["greetings"]), body]
        if rng.random() < 0.7:
            parts.append(rng.choice(shared["closings"]))
        return join.join(parts)
    if kind == 2:
        parts = [rng.choice(shared["greetings"])]
        if context:
            parts.append(fill(rng.choice(context), shared, rng, language))
        if rng.random() < 0.4:
            parts.append(rng.choice(shared["fillers"]))
        parts.append(body)
        if sentiment == "negative" and rng.random() < 0.4:
            parts.append(rng.choice(EN_ANGRY if language == "en" else ZH_ANGRY))
        parts.append(rng.choice(shared["closings"]))
        if language == "en" and rng.random() < 0.6:
            parts.append(rng.choice(shared["names"]))
        separator = rng.choice(["\n", " "]) if language == "en" else rng.choice(["\n", ""])
        return separator.join(parts)
    text = body
    if language == "en":
        if rng.random() < 0.6:
            text = text.lower()
        if rng.random() < 0.4:
            text = text.rstrip(".?!")
        if sentiment == "negative" and rng.random() < 0.3:
            text = text.upper()
    else:
        for word, english in ZH_MIXED.items():
            if word in text and rng.random() < 0.5:
                text = text.replace(word, english, 1)
        if rng.random() < 0.4:
            text = text.rstrip("。！？")
    text = typos(text, language, rng)
    if rng.random() < 0.5:
        text += rng.choice(["", " "]) + rng.choice(EMOJI[sentiment])
    elif sentiment == "negative" and rng.random() < 0.5:
        text = text.rstrip(".!?。！？") + rng.choice(["!!!", "??", "?!", "！！！", "？？"])
    return text


def compose() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    for language in ("en", "zh"):
        shared, intents = read_phrasebook(HERE / "source" / f"{language}.txt")
        for intent, sections in intents.items():
            for number, line in enumerate(sections["cores"], start=1):
                mark, _, core = line.partition("|")
                sentiment = SENTIMENTS[mark]
                group = f"{language}-{intent}-{number:03d}"
                for kind in range(VARIANTS_PER_CORE):
                    text = vary(core, sentiment, kind, shared, sections.get("context", []), language, rng).strip()
                    if text in seen:
                        continue
                    seen.add(text)
                    rows.append(
                        {"text": text, "language": language, "intent": intent, "sentiment": sentiment, "group": group}
                    )
    return rows


def main() -> None:
    rows = compose()
    with OUTPUT.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "language", "intent", "sentiment", "group"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} examples written to {OUTPUT}")


if __name__ == "__main__":
    main()
