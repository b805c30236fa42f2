"""The retrieval evaluation's corpus: product manuals for invented products, with facts no
model could know, and questions that ask for each fact in other words.

Deterministic (seeded). Each fact has a statement, written into a manual, and a question
that paraphrases it (different verbs and nouns, so full-text search alone does not find
every one); ``answer`` is the string the answering chunk and a correct reply hold. The
manuals also hold filler paragraphs about the same products, and every fact type appears
for many products, so the product's name matters as much as the topic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SEED = 20261130
SYLLABLES = ["zor", "blax", "quil", "van", "tesh", "mor", "kip", "lun", "dra", "vex", "ori",
             "pax", "sel", "tor", "nim", "bri", "cas", "dun", "fel", "gar"]  # fmt: skip
KINDS = ["headset", "kettle", "bicycle lamp", "desk fan", "camera", "thermostat", "backpack",
         "drone", "speaker", "blender"]  # fmt: skip
CITIES = ["Port Quillan", "Velmora", "North Dask", "Ashgrove", "Tarrow Bay", "Mirefield",
          "Coldwater Reach", "Elsinby", "Brannock", "Oxley Falls"]  # fmt: skip
PEOPLE = ["Wenna Crask", "Ilo Marrant", "Dagny Fell", "Osric Paley", "Tamsin Orrow",
          "Jory Vantch", "Mabyn Sterk", "Pello Quist"]  # fmt: skip
COLOURS = ["tangerine", "slate", "moss green", "coral", "ink blue", "sand", "plum", "ivory"]
MONTHS = ["January", "March", "May", "July", "September", "November"]
COUNTRIES = ["Canada", "Norway", "Chile", "Japan", "Kenya", "Portugal"]


@dataclass(frozen=True, slots=True)
class Fact:
    """``answer`` is the text the answering chunk holds; ``accept`` the ways a reply may
    state the fact (lower case: "124 grams" or "124g"; "$314" is not "314 euros")."""

    product: str
    statement: str
    question: str
    answer: str
    accept: tuple[str, ...] = ()

    def stated_in(self, reply: str) -> bool:
        flat = " ".join(reply.lower().split())
        return any(form.lower() in flat for form in (self.accept or (self.answer,)))


@dataclass(frozen=True, slots=True)
class Manual:
    product: str
    sections: list[tuple[str, list[str]]]
    facts: list[Fact]


def _name(rng: random.Random) -> str:
    return "".join(rng.sample(SYLLABLES, 2)).capitalize() + f" {rng.randint(2, 9)}"


def _facts(rng: random.Random, p: str) -> list[Fact]:
    n = rng.randint(21, 89)
    hours = rng.randint(11, 59)
    years = rng.randint(2, 7)
    grams = rng.randint(120, 980)
    colours = rng.sample(COLOURS, 2)
    city = rng.choice(CITIES)
    person = rng.choice(PEOPLE)
    price = rng.randint(40, 900)
    month, year = rng.choice(MONTHS), rng.randint(2019, 2025)
    country, days = rng.choice(COUNTRIES), rng.randint(3, 19)
    start, end = rng.randint(6, 9), rng.randint(16, 21)
    code = f"{rng.choice('ABCDEFGHJK')}{rng.randint(100, 999)}"
    return [
        Fact(p, f"Returns of the {p} are accepted within {n} days of delivery, unused and in "
                "the original packaging.",
             f"How long do I have to send back a {p} I bought?", f"{n} days",
             (f"{n} days", f"{n}-day", f"{n} day")),
        Fact(p, f"On a full charge the {p} keeps going for roughly {hours} hours.",
             f"What battery life should I expect from the {p}?", f"{hours} hours",
             (f"{hours} hours", f"{hours}-hour", f"{hours} hour")),
        Fact(p, f"Every {p} carries a {years}-year limited warranty against manufacturing "
                "defects.",
             f"What guarantee period comes with the {p}?", f"{years}-year",
             (f"{years}-year", f"{years} year")),
        Fact(p, f"Without its case the {p} weighs {grams} grams.",
             f"How heavy is the {p}?", f"{grams} grams",
             (f"{grams} grams", f"{grams} g", f"{grams}g")),
        Fact(p, f"The {p} is sold in {colours[0]} and {colours[1]}.",
             f"Which colours can I buy the {p} in?", colours[0], tuple(colours)),
        Fact(p, f"Each {p} is assembled at our plant in {city}.",
             f"Where is the {p} manufactured?", city),
        Fact(p, f"The {p} was designed by {person}, who leads our product studio.",
             f"Who created the {p}?", person),
        Fact(p, f"The {p} costs {price} euros including tax.",
             f"What is the price of a {p}?", f"{price} euros",
             (f"{price} euro", f"€{price}", f"{price}€", f"{price} eur")),
        Fact(p, f"The {p} first went on sale in {month} {year}.",
             f"When was the {p} launched?", f"{month} {year}"),
        Fact(p, f"Orders of the {p} reach {country} in {days} business days.",
             f"How long does delivery of a {p} to {country} take?", f"{days} business days",
             (f"{days} business days", f"{days} days", f"{days} working days")),
        Fact(p, f"Our phone line for {p} owners is staffed from {start} a.m. to {end - 12} p.m. "
                "on weekdays.",
             f"When can I call someone about my {p}?", f"{start} a.m.",
             (f"{start} a.m.", f"{start} am", f"{start}am", f"{start}:00")),
        Fact(p, f"The replacement part number for the {p} filter is {code}.",
             f"Which spare part code do I order for the {p} filter?", code),
    ]  # fmt: skip


FILLER = [
    "The {p} pairs with the companion app on phones and tablets, where settings are kept "
    "in sync across devices once you sign in.",
    "Before first use, unpack the {p} fully and keep the packaging until you are sure you "
    "want to keep it.",
    "Clean the {p} with a soft, dry cloth; solvents and abrasive sponges damage the finish "
    "and are not covered.",
    "Firmware updates for the {p} arrive through the app and install overnight while the "
    "device is idle and connected.",
    "If the {p} stops responding, hold the main button for ten seconds to restart it; your "
    "settings are kept.",
    "Accessories for the {p} are sold separately in our online shop and at selected retailers.",
    "The {p} meets the safety rules of the markets it is sold in; the declarations are "
    "printed in the box.",
    "Recycle the {p} at a collection point for electronics at the end of its life; do not "
    "put it in household waste.",
]
SECTION_OF = ["Returns", "Battery", "Warranty", "Specifications", "Colours", "Manufacturing",
              "Design", "Pricing", "History", "Shipping", "Support", "Spare parts"]  # fmt: skip


def manuals(count: int = 36, fillers: int = 3) -> list[Manual]:
    """``count`` product manuals: sections of one fact each plus ``fillers`` paragraphs
    about the same product (so a manual spans 8 or 9 chunks, and naming the product does
    not find the fact's chunk among them)."""
    rng = random.Random(SEED)
    seen: set[str] = set()
    out = []
    while len(out) < count:
        product = f"{_name(rng)} {rng.choice(KINDS)}"
        if product.split()[0] in seen:
            continue
        seen.add(product.split()[0])
        facts = _facts(rng, product)
        sections = []
        for heading, fact in zip(SECTION_OF, facts, strict=True):
            paragraphs = [fact.statement]
            for template in rng.sample(FILLER, fillers):
                paragraphs.append(template.format(p=product))
            sections.append((f"{product}: {heading}", paragraphs))
        out.append(Manual(product, sections, facts))
    return out


def questions(all_manuals: list[Manual], count: int = 100) -> list[Fact]:
    """``count`` facts to ask about, spread over the manuals and the fact types."""
    rng = random.Random(SEED + 1)
    facts = [fact for manual in all_manuals for fact in manual.facts]
    return rng.sample(facts, count)


def lookups(all_manuals: list[Manual], count: int = 20) -> list[Fact]:
    """Questions that quote an identifier (a spare part's code) and ask what it belongs
    to: exact terms, which full-text search finds and an embedding model may blur."""
    rng = random.Random(SEED + 2)
    parts = [m.facts[-1] for m in all_manuals]
    return [
        Fact(f.product, f.statement, f"What does spare part {f.answer} fit?", f.answer)
        for f in rng.sample(parts, count)
    ]
