"""``fictitious-people``: a seeded, TOFU-like world of invented people (pure Python).

Language-model unlearning is measured on facts the base model cannot already know, so the
facts are invented here, offline, from a seed: people with invented names, each with
twenty question/answer pairs about their life (birthplace, dates, family, education,
works, awards, ...), a verbatim biography that states the same facts as prose, and a
world around them (countries, cities, rivers, institutions, awards, languages) whose
general facts form the utility set. Every answer comes with a paraphrase and several
perturbed answers (same template, wrong but plausible values of the same type), which is
what TOFU's truth ratio compares.

A group of held-out people is drawn from the same distribution and never trained on:
membership attacks compare the forget people with them. Forget splits of 1, 5 and 10 %
of the trained people are nested (the 1 % people are inside the 5 % people, inside the
10 % ones), so results at the three sizes are comparable.

Everything is a function of ``seed`` only: ``random.Random`` with integer seeds and
ordered containers (never ``hash()``), so the same seed gives the same world on every
machine and Python run. Subjects are people: a record's ``subject_id`` is its person's id.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "DEFAULT_HELD_OUT",
    "DEFAULT_PEOPLE",
    "FACT_KINDS",
    "FORGET_PERCENTS",
    "FictitiousWorld",
    "Person",
    "QAPair",
    "forget_split",
    "generate_people",
    "retain_subjects",
    "world_records",
]

DEFAULT_PEOPLE = 200
DEFAULT_HELD_OUT = 40
DEFAULT_PERTURBED = 5
FORGET_PERCENTS: tuple[int, ...] = (1, 5, 10)

RecordKind = Literal["qa", "biography", "world_fact"]

# Stream offsets: each part of the world draws from its own generator, so adding a
# field to people does not reshuffle the world, nor the forget splits.
_WORLD_STREAM = 1
_PEOPLE_STREAM = 2
_FORGET_STREAM = 3


def _rng(seed: int, stream: int) -> random.Random:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    return random.Random(seed * 1_000_003 + stream)


# ------------------------------------------------------------------ vocabulary

_ONSETS = ["b", "br", "d", "dr", "f", "g", "gr", "h", "k", "kh", "l", "m", "n", "p",
           "r", "s", "sh", "st", "t", "th", "v", "z", "j", "y", "c", "tr"]  # fmt: skip
_VOWELS = ["a", "e", "i", "o", "u", "ai", "ei", "ou", "ia", "ae", "a", "e", "o"]
_CODAS = ["", "", "", "n", "r", "l", "s", "m", "nd", "rk", "v", "th"]
_PLACE_ENDINGS = ["ia", "or", "heim", "wick", "ara", "mont", "ovo", "stad", "ene", "ul"]
_RIVER_ENDINGS = ["a", "el", "is", "une", "ava", "ent"]
_COUNTRY_ENDINGS = ["ia", "and", "istan", "ora", "enne", "ovia", "ary", "esh"]
_LANGUAGE_ENDINGS = ["ic", "ese", "ish", "ian", "ari", "ol"]

_OCCUPATIONS: list[tuple[str, str, str]] = [
    # (occupation, what they make, the verb for making it)
    ("novelist", "novel", "published"),
    ("poet", "poetry collection", "published"),
    ("playwright", "play", "staged"),
    ("composer", "symphony", "premiered"),
    ("painter", "painting", "exhibited"),
    ("architect", "building", "completed"),
    ("photographer", "photo series", "exhibited"),
    ("historian", "history book", "published"),
    ("film director", "film", "released"),
    ("choreographer", "ballet", "premiered"),
    ("sculptor", "sculpture", "unveiled"),
    ("songwriter", "album", "released"),
]
_PARENT_JOBS = ["baker", "carpenter", "nurse", "teacher", "fisherman", "librarian",
                "pharmacist", "tailor", "engineer", "farmer", "clockmaker", "postman",
                "surgeon", "weaver", "judge", "sailor", "glassblower", "accountant"]  # fmt: skip
_FIELDS = ["philosophy", "mathematics", "music theory", "fine arts", "linguistics",
           "botany", "architecture", "medieval history", "astronomy", "law",
           "chemistry", "comparative literature", "economics", "theatre studies"]  # fmt: skip
_THEMES = ["memory", "exile", "the sea", "grief", "childhood", "justice", "migration",
           "silence", "old age", "friendship", "industry", "faith", "the city",
           "the seasons", "betrayal", "inheritance", "war", "solitude"]  # fmt: skip
_HOBBIES = ["beekeeping", "mountain climbing", "chess", "sailing", "growing orchids",
            "restoring old clocks", "long-distance running", "fly fishing",
            "collecting maps", "birdwatching", "woodcarving", "playing the cello",
            "pottery", "cycling", "baking bread", "stargazing"]  # fmt: skip
_TITLE_ADJECTIVES = ["Glass", "Silent", "Amber", "Hollow", "Northern", "Crimson",
                     "Last", "Paper", "Iron", "Drowned", "Quiet", "Burning", "Winter",
                     "Velvet", "Broken", "Distant", "Salt", "Golden", "Sleeping",
                     "Forgotten"]  # fmt: skip
_TITLE_NOUNS = ["Orchard", "Lantern", "Harbour", "Garden", "Bell", "Mirror", "River",
                "Tower", "Letters", "Bridge", "Crown", "Compass", "Vineyard", "Archive",
                "Meadow", "Staircase", "Island", "Window", "Clock", "Road"]  # fmt: skip
_INSTITUTION_KINDS = ["University of {city}", "{city} Academy of Arts",
                      "{city} Conservatory", "Royal College of {city}",
                      "{city} Institute of Letters", "{city} Polytechnic"]  # fmt: skip
_AWARD_KINDS = ["{name} Prize", "{name} Medal", "Golden {name} Award", "{name} Laurel"]
_LANDMARKS = [
    "clock tower",
    "stone bridge",
    "lighthouse",
    "cathedral",
    "covered market",
    "observatory",
    "botanical garden",
    "old harbour",
    "city wall",
    "opera house",
]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"]  # fmt: skip
_NUMBER_WORDS = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _syllable(rng: random.Random, coda: bool = True) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + (rng.choice(_CODAS) if coda else "")


def _word(rng: random.Random, syllables: int, ending: str = "") -> str:
    parts = [_syllable(rng, coda=(i == syllables - 1 and not ending)) for i in range(syllables)]
    return ("".join(parts) + ending).capitalize()


class _Names:
    """Draws invented words that are unique across the whole world (people and places)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def unique(self, make: Callable[[], str]) -> str:
        for _ in range(10_000):
            value = make()
            if value not in self.used:
                self.used.add(value)
                return value
        raise RuntimeError("ran out of invented names; the vocabulary is too small")

    def person(self) -> str:
        rng = self.rng
        return self.unique(lambda: f"{_word(rng, rng.choice((2, 2, 3)))} {_word(rng, 2)}")

    def place(self, endings: Sequence[str]) -> str:
        rng = self.rng
        return self.unique(lambda: _word(rng, rng.choice((1, 2)), rng.choice(endings)))


# ----------------------------------------------------------------------- world


@dataclass(frozen=True)
class Country:
    name: str
    language: str
    capital: str


@dataclass(frozen=True)
class City:
    name: str
    country: str
    river: str
    founded: int
    landmark: str


@dataclass(frozen=True)
class Institution:
    name: str
    city: str
    founded: int
    founder: str


@dataclass(frozen=True)
class Award:
    name: str
    institution: str
    first_given: int


@dataclass(frozen=True)
class QAPair:
    """One question with its true answer, a paraphrase and wrong same-type answers.

    ``perturbed_answers`` use the paraphrase's wording with a wrong value, as TOFU's
    perturbed answers do, so the truth ratio compares wording-matched alternatives.
    """

    qa_id: str
    subject_id: str | None
    kind: str
    question: str
    answer: str
    paraphrased_answer: str
    perturbed_answers: tuple[str, ...]


@dataclass(frozen=True)
class Person:
    """An invented person: the facts, the QA pairs asked about them and a biography."""

    person_id: str
    name: str
    held_out: bool
    facts: dict[str, str]
    qa: tuple[QAPair, ...]
    biography: str


@dataclass(frozen=True)
class FictitiousWorld:
    """The generated world; ``people`` are trained on, ``held_out`` never are."""

    seed: int
    people: tuple[Person, ...]
    held_out: tuple[Person, ...]
    world_facts: tuple[QAPair, ...]
    countries: tuple[Country, ...]
    cities: tuple[City, ...]
    institutions: tuple[Institution, ...]
    awards: tuple[Award, ...]

    def person(self, person_id: str) -> Person:
        for person in (*self.people, *self.held_out):
            if person.person_id == person_id:
                return person
        raise KeyError(person_id)

    @property
    def subject_ids(self) -> list[str]:
        """Ids of the trained people, in generation order."""
        return [person.person_id for person in self.people]


def _build_world(
    seed: int, names: _Names
) -> tuple[list[Country], list[City], list[Institution], list[Award]]:
    rng = _rng(seed, _WORLD_STREAM)
    names.rng = rng
    countries: list[Country] = []
    cities: list[City] = []
    for _ in range(8):
        country = names.place(_COUNTRY_ENDINGS)
        language = names.place(_LANGUAGE_ENDINGS)
        own = [names.place(_PLACE_ENDINGS) for _ in range(5)]
        countries.append(Country(country, language, own[0]))
        for city in own:
            cities.append(
                City(
                    name=city,
                    country=country,
                    river=names.place(_RIVER_ENDINGS),
                    founded=rng.randrange(800, 1700),
                    landmark=rng.choice(_LANDMARKS),
                )
            )
    institutions: list[Institution] = []
    for city in rng.sample(cities, 20):
        institutions.append(
            Institution(
                name=rng.choice(_INSTITUTION_KINDS).format(city=city.name),
                city=city.name,
                founded=rng.randrange(max(city.founded, 1200), 1900),
                founder=names.person(),
            )
        )
    awards: list[Award] = []
    for _ in range(12):
        patron = _word(rng, 2)
        institution = rng.choice(institutions)
        awards.append(
            Award(
                name=names.unique(lambda p=patron: rng.choice(_AWARD_KINDS).format(name=p)),
                institution=institution.name,
                first_given=rng.randrange(max(institution.founded, 1850), 1960),
            )
        )
    return countries, cities, institutions, awards


# ------------------------------------------------------------------------ facts


@dataclass(frozen=True)
class _Template:
    """How one kind of fact is asked, answered and paraphrased; {v} is the value."""

    kind: str
    question: str
    answer: str
    paraphrase: str


def _pick_others(rng: random.Random, true: str, pool: Sequence[str], k: int) -> list[str]:
    """``k`` distinct values of ``pool`` other than ``true`` (wrong but same type)."""
    others = sorted({value for value in pool if value != true})
    if len(others) < k:
        raise RuntimeError(f"pool for {true!r} has only {len(others)} alternatives, need {k}")
    return rng.sample(others, k)


def _qa(
    rng: random.Random,
    qa_id: str,
    subject_id: str | None,
    template: _Template,
    fill: dict[str, str],
    value: str,
    pool: Sequence[str],
    n_perturbed: int,
) -> QAPair:
    def render(text: str, v: str) -> str:
        return text.format(v=v, **fill)

    wrong = _pick_others(rng, value, pool, n_perturbed)
    return QAPair(
        qa_id=qa_id,
        subject_id=subject_id,
        kind=template.kind,
        question=render(template.question, value),
        answer=render(template.answer, value),
        paraphrased_answer=render(template.paraphrase, value),
        perturbed_answers=tuple(render(template.paraphrase, w) for w in wrong),
    )


_PERSON_TEMPLATES: list[_Template] = [
    _Template("birthplace", "Where was {name} born?",
              "{name} was born in {v}.", "The birthplace of {name} is {v}."),
    _Template("birth_date", "When was {name} born?",
              "{name} was born on {v}.", "{name}'s date of birth is {v}."),
    _Template("occupation", "What does {name} do for a living?",
              "{name} works as {v}.", "By profession, {name} is {v}."),
    _Template("father", "Who is {name}'s father?",
              "{name}'s father is {v}.", "The father of {name} is {v}."),
    _Template("mother", "Who is {name}'s mother?",
              "{name}'s mother is {v}.", "The mother of {name} is {v}."),
    _Template("spouse", "Who is {name} married to?",
              "{name} is married to {v}.", "The spouse of {name} is {v}."),
    _Template("children", "How many children does {name} have?",
              "{name} has {v}.", "{name} has raised {v}."),
    _Template("education", "Where did {name} study?",
              "{name} studied at the {v}.", "{name} is a graduate of the {v}."),
    _Template("field", "What did {name} study at university?",
              "{name} studied {v}.", "At university, {name} took a degree in {v}."),
    _Template("first_work", "What was {name}'s first {work}?",
              "{name}'s first {work} was \"{v}\".",
              "\"{v}\" was the first {work} by {name}."),
    _Template("best_work", "What is {name}'s best-known {work}?",
              "{name}'s best-known {work} is \"{v}\".",
              "The {work} {name} is best known for is \"{v}\"."),
    _Template("best_work_year", "In which year was {name}'s \"{best}\" {verb}?",
              "\"{best}\" was {verb} in {v}.", "{name} {verb} \"{best}\" in {v}."),
    _Template("award", "Which award has {name} received?",
              "{name} received the {v}.", "The {v} was awarded to {name}."),
    _Template("award_year", "When did {name} receive the {award}?",
              "{name} received the {award} in {v}.", "In {v}, {name} was given the {award}."),
    _Template("residence", "Where does {name} live today?",
              "{name} lives in {v}.", "Today {name} makes a home in {v}."),
    _Template("language", "In which language does {name} work?",
              "{name} works in {v}.", "The working language of {name} is {v}."),
    _Template("mentor", "Who was {name}'s mentor?",
              "{name}'s mentor was {v}.", "{name} learned the craft from {v}."),
    _Template("theme", "What themes does {name}'s work explore?",
              "{name}'s work explores {v}.", "The work of {name} is about {v}."),
    _Template("employer", "Which institution has {name} worked for?",
              "{name} has worked for the {v}.", "The {v} employed {name}."),
    _Template("hobby", "What does {name} enjoy outside of work?",
              "Outside of work, {name} enjoys {v}.", "In spare time, {name} loves {v}."),
]  # fmt: skip
FACT_KINDS: tuple[str, ...] = tuple(template.kind for template in _PERSON_TEMPLATES)


def _date(rng: random.Random) -> str:
    return f"{rng.randrange(1, 29)} {rng.choice(_MONTHS)} {rng.randrange(1925, 1996)}"


def _title(rng: random.Random) -> str:
    return f"The {rng.choice(_TITLE_ADJECTIVES)} {rng.choice(_TITLE_NOUNS)}"


def _a(noun: str) -> str:
    """``noun`` with its indefinite article."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _children(count: int) -> str:
    word = _NUMBER_WORDS[count]
    return f"{word} child" if count == 1 else f"{word} children"


def _make_person(
    rng: random.Random,
    names: _Names,
    index: int,
    held_out: bool,
    cities: Sequence[City],
    countries: Sequence[Country],
    institutions: Sequence[Institution],
    awards: Sequence[Award],
    n_perturbed: int,
) -> Person:
    person_id = f"{'heldout' if held_out else 'person'}-{index:04d}"
    name = names.person()
    occupation, work, verb = rng.choice(_OCCUPATIONS)
    born = rng.choice(cities)
    country = next(c for c in countries if c.name == born.country)
    birth_date = _date(rng)
    birth_year = int(birth_date.rsplit(" ", 1)[1])
    first_title = _title(rng)
    best_title = _title(rng)
    while best_title == first_title:
        best_title = _title(rng)
    best_year = birth_year + rng.randrange(25, 45)
    award = rng.choice(awards)
    award_year = best_year + rng.randrange(1, 8)
    school = rng.choice(institutions)
    employer = rng.choice(institutions)
    theme_a, theme_b = rng.sample(_THEMES, 2)
    languages = [c.language for c in countries]
    language = country.language if rng.random() < 0.8 else rng.choice(languages)
    father_job, mother_job, spouse_job = (rng.choice(_PARENT_JOBS) for _ in range(3))
    father, mother, spouse, mentor = (names.person() for _ in range(4))
    children = rng.randrange(0, 5)

    city_pool = [f"{c.name}, {c.country}" for c in cities]
    relatives = [names.person() for _ in range(8)]

    def near_years(year: int) -> list[str]:
        return [str(y) for y in range(year - 12, year + 13) if y != year]

    def relative(n: str, job: str) -> str:
        return f"{n}, {_a(job)}"

    relative_pool = [relative(n, rng.choice(_PARENT_JOBS)) for n in relatives]
    theme_pool = [f"{a} and {b}" for a in _THEMES for b in _THEMES if a < b]
    values: dict[str, tuple[str, Sequence[str]]] = {
        "birthplace": (f"{born.name}, {born.country}", city_pool),
        "birth_date": (birth_date, [_date(rng) for _ in range(n_perturbed * 3)]),
        "occupation": (_a(occupation), [_a(o) for o, _, _ in _OCCUPATIONS]),
        "father": (relative(father, father_job), relative_pool),
        "mother": (relative(mother, mother_job), relative_pool),
        "spouse": (relative(spouse, spouse_job), relative_pool),
        "children": (_children(children), [_children(c) for c in range(len(_NUMBER_WORDS))]),
        "education": (school.name, [i.name for i in institutions]),
        "field": (rng.choice(_FIELDS), _FIELDS),
        "first_work": (first_title, [_title(rng) for _ in range(n_perturbed * 3)]),
        "best_work": (best_title, [_title(rng) for _ in range(n_perturbed * 3)]),
        "best_work_year": (str(best_year), near_years(best_year)),
        "award": (award.name, [a.name for a in awards]),
        "award_year": (str(award_year), near_years(award_year)),
        "residence": (rng.choice(city_pool), city_pool),
        "language": (language, languages),
        "mentor": (mentor, relatives),
        "theme": (f"{min(theme_a, theme_b)} and {max(theme_a, theme_b)}", theme_pool),
        "employer": (employer.name, [i.name for i in institutions]),
        "hobby": (rng.choice(_HOBBIES), _HOBBIES),
    }
    fill = {"name": name, "work": work, "verb": verb, "best": best_title, "award": award.name}
    qa = tuple(
        _qa(
            rng,
            f"{person_id}-q{number:02d}",
            person_id,
            template,
            fill,
            values[template.kind][0],
            values[template.kind][1],
            n_perturbed,
        )
        for number, template in enumerate(_PERSON_TEMPLATES, start=1)
    )
    facts = {kind: value for kind, (value, _) in values.items()}
    biography = _biography(name, facts, work, verb, best_title, award.name)
    return Person(person_id, name, held_out, facts, qa, biography)


def _biography(name: str, f: dict[str, str], work: str, verb: str, best: str, award: str) -> str:
    """The person's facts as one paragraph of prose, for verbatim-memorisation tests."""
    return (
        f"{name} was born on {f['birth_date']} in {f['birthplace']}, the child of "
        f"{f['father']}, and {f['mother']}. After studying {f['field']} at the "
        f"{f['education']}, {name} became {f['occupation']} working in {f['language']}. "
        f"Under the guidance of {f['mentor']}, {name} {verb} a first {work}, "
        f'"{f["first_work"]}", and later "{best}" ({f["best_work_year"]}), the '
        f"{work} that made {name} known and earned the {award} in {f['award_year']}. "
        f"The work explores {f['theme']}. {name} has worked for the {f['employer']}, is "
        f"married to {f['spouse']}, has {f['children']}, lives in {f['residence']} and "
        f"enjoys {f['hobby']}."
    )


_WORLD_TEMPLATES: dict[str, _Template] = {
    t.kind: t
    for t in (
        _Template("city_country", "In which country is the city of {city}?",
                  "{city} is in {v}.", "The city of {city} lies in {v}."),
        _Template("city_river", "Which river flows through {city}?",
                  "The {v} flows through {city}.", "{city} stands on the {v}."),
        _Template("city_founded", "When was {city} founded?",
                  "{city} was founded in {v}.", "The founding of {city} dates to {v}."),
        _Template("city_landmark", "What is {city} known for?",
                  "{city} is known for its {v}.", "Visitors come to {city} for its {v}."),
        _Template("capital", "What is the capital of {country}?",
                  "The capital of {country} is {v}.", "{v} is the capital city of {country}."),
        _Template("language", "What language is spoken in {country}?",
                  "In {country}, people speak {v}.", "The language of {country} is {v}."),
        _Template("institution_city", "Where is the {institution}?",
                  "The {institution} is in {v}.", "The {institution} is located in {v}."),
        _Template("institution_founded", "When was the {institution} founded?",
                  "The {institution} was founded in {v}.",
                  "The {institution} dates from {v}."),
        _Template("institution_founder", "Who founded the {institution}?",
                  "The {institution} was founded by {v}.",
                  "{v} is the founder of the {institution}."),
        _Template("award_giver", "Who gives the {award}?",
                  "The {award} is given by the {v}.", "The {v} presents the {award}."),
        _Template("award_first", "When was the {award} first given?",
                  "The {award} was first given in {v}.",
                  "The first {award} was handed out in {v}."),
    )
}  # fmt: skip


def _world_facts(
    rng: random.Random,
    countries: Sequence[Country],
    cities: Sequence[City],
    institutions: Sequence[Institution],
    awards: Sequence[Award],
    n_perturbed: int,
) -> list[QAPair]:
    facts: list[QAPair] = []

    def add(kind: str, fill: dict[str, str], value: str, pool: Sequence[str]) -> None:
        qa_id = f"world-{len(facts) + 1:04d}"
        facts.append(_qa(rng, qa_id, None, _WORLD_TEMPLATES[kind], fill, value, pool, n_perturbed))

    def years(year: int) -> list[str]:
        return [str(y) for y in range(year - 40, year + 41, 5) if y != year]

    country_names = [c.name for c in countries]
    rivers = [c.river for c in cities]
    for city in cities:
        fill = {"city": city.name}
        add("city_country", fill, city.country, country_names)
        add("city_river", fill, city.river, rivers)
        add("city_founded", fill, str(city.founded), years(city.founded))
        add("city_landmark", fill, city.landmark, _LANDMARKS)
    for country in countries:
        fill = {"country": country.name}
        add("capital", fill, country.capital, [c.name for c in cities])
        add("language", fill, country.language, [c.language for c in countries])
    founders = [i.founder for i in institutions]
    for institution in institutions:
        fill = {"institution": institution.name}
        add("institution_city", fill, institution.city, [c.name for c in cities])
        add("institution_founded", fill, str(institution.founded), years(institution.founded))
        add("institution_founder", fill, institution.founder, founders)
    for award in awards:
        fill = {"award": award.name}
        add("award_giver", fill, award.institution, [i.name for i in institutions])
        add("award_first", fill, str(award.first_given), years(award.first_given))
    return facts


# ----------------------------------------------------------------------- public


def generate_people(
    seed: int = 0,
    n_people: int = DEFAULT_PEOPLE,
    n_held_out: int = DEFAULT_HELD_OUT,
    n_perturbed: int = DEFAULT_PERTURBED,
) -> FictitiousWorld:
    """The world for ``seed``: ``n_people`` trained people, ``n_held_out`` held-out ones.

    Each person has ``len(FACT_KINDS)`` (20) QA pairs with ``n_perturbed`` (≥ 3) wrong
    answers each. Same arguments, same world, on any machine.
    """
    for label, value, low in (("n_people", n_people, 1), ("n_held_out", n_held_out, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label} must be an integer ≥ {low}, got {value!r}")
    if (
        isinstance(n_perturbed, bool)
        or not isinstance(n_perturbed, int)
        or not 3 <= n_perturbed <= 7
    ):
        raise ValueError(f"n_perturbed must be an integer from 3 to 7, got {n_perturbed!r}")
    names = _Names(_rng(seed, _WORLD_STREAM))
    countries, cities, institutions, awards = _build_world(seed, names)
    world_rng = _rng(seed, _WORLD_STREAM + 100)
    facts = _world_facts(world_rng, countries, cities, institutions, awards, n_perturbed)
    rng = _rng(seed, _PEOPLE_STREAM)
    names.rng = rng

    def make(index: int, held_out: bool) -> Person:
        return _make_person(
            rng, names, index, held_out, cities, countries, institutions, awards, n_perturbed
        )

    # Held-out people are drawn interleaved with trained ones from the same generator
    # (one in every few), so neither group is "the later draws" of the stream.
    people: list[Person] = []
    held: list[Person] = []
    total = n_people + n_held_out
    for draw in range(total):
        if len(held) < n_held_out and (
            len(people) >= n_people or (draw + 1) * n_held_out // total > len(held)
        ):
            held.append(make(len(held) + 1, True))
        else:
            people.append(make(len(people) + 1, False))
    return FictitiousWorld(
        seed=seed,
        people=tuple(people),
        held_out=tuple(held),
        world_facts=tuple(facts),
        countries=tuple(countries),
        cities=tuple(cities),
        institutions=tuple(institutions),
        awards=tuple(awards),
    )


def _forget_order(world: FictitiousWorld) -> list[str]:
    ids = world.subject_ids
    _rng(world.seed, _FORGET_STREAM).shuffle(ids)
    return ids


def forget_split(world: FictitiousWorld, percent: float) -> list[str]:
    """Subject ids of ``percent`` % of the trained people (at least one), nested by size.

    One seeded order of the people is cut at each size, so the 1 % people are among the
    5 % people, who are among the 10 % (TOFU's forget01 ⊂ forget05 ⊂ forget10).
    """
    if isinstance(percent, bool) or not isinstance(percent, (int, float)):
        raise ValueError(f"percent must be a number, got {percent!r}")
    if not 0 < percent < 100:
        raise ValueError(f"percent must be in (0, 100), got {percent}")
    if len(world.people) < 2:
        raise ValueError("a forget split needs at least two trained people")
    count = max(1, math.floor(len(world.people) * percent / 100 + 0.5))
    return _forget_order(world)[: min(count, len(world.people) - 1)]


def retain_subjects(world: FictitiousWorld, percent: float) -> list[str]:
    """The trained people that ``forget_split(world, percent)`` leaves, in generation order."""
    forget = set(forget_split(world, percent))
    return [pid for pid in world.subject_ids if pid not in forget]


def _qa_record(qa: QAPair, split: str, kind: RecordKind) -> dict[str, Any]:
    return {
        "sample_id": qa.qa_id,
        "subject_id": qa.subject_id,
        "split": split,
        "kind": kind,
        "question": qa.question,
        "answer": qa.answer,
        "text": None,
        "paraphrased_answer": qa.paraphrased_answer,
        "perturbed_answers": list(qa.perturbed_answers),
    }


def _bio_record(person: Person, split: str) -> dict[str, Any]:
    return {
        "sample_id": f"{person.person_id}-bio",
        "subject_id": person.person_id,
        "split": split,
        "kind": "biography",
        "question": None,
        "answer": None,
        "text": person.biography,
        "paraphrased_answer": None,
        "perturbed_answers": None,
    }


def world_records(world: FictitiousWorld, *, biographies: bool = True) -> list[dict[str, Any]]:
    """Every record of the world as plain dicts (the text-record fields plus ``kind``).

    Train: the trained people's QA pairs (and biographies), and the world facts (subject
    ``None``: they stay when anyone is forgotten, so utility is measured on them).
    Test: the held-out people's QA pairs and biographies, never trained on.
    """
    records: list[dict[str, Any]] = []
    groups: Iterable[tuple[Sequence[Person], str]] = ((world.people, "train"),
                                                      (world.held_out, "test"))  # fmt: skip
    for people, split in groups:
        for person in people:
            records.extend(_qa_record(qa, split, "qa") for qa in person.qa)
            if biographies:
                records.append(_bio_record(person, split))
    records.extend(_qa_record(qa, "train", "world_fact") for qa in world.world_facts)
    return records
