"""Synthetic people for the learned matcher's tests: each person has one to three noisy
copies (typos, nicknames, missing fields, day and month swapped); some people live in
households that share a surname, an address and a landline but not a given name or a
birth date. Everything comes from one seeded `random.Random`, so the data is the same
on every run.

The truth is the person each record was made from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta

from rapidfuzz.distance import JaroWinkler

from accord.match.columns import Columns

# given name -> nicknames (all known to accord.standardize's nickname table)
GIVEN: dict[str, list[str]] = {
    "william": ["bill", "will"],
    "robert": ["bob", "rob"],
    "elizabeth": ["liz", "beth"],
    "margaret": ["peggy", "maggie"],
    "james": ["jim", "jimmy"],
    "katherine": ["kate", "kathy"],
    "richard": ["dick", "rick"],
    "thomas": ["tom"],
    "charles": ["charlie", "chuck"],
    "joseph": ["joe"],
    "edward": ["ed", "ned"],
    "anthony": ["tony"],
    "daniel": ["dan"],
    "michael": ["mike"],
    "susan": ["sue"],
    "patricia": ["patty", "trish"],
    "jennifer": ["jenny"],
    "deborah": ["debbie"],
    "rebecca": ["becky"],
    "benjamin": ["ben"],
    "nicholas": ["nick"],
    "matthew": ["matt"],
    "andrew": ["andy"],
    "stephen": ["steve"],
    "frederick": ["fred"],
    "henry": ["harry"],
    "lawrence": ["larry"],
    "victoria": ["vicky"],
    "dorothy": ["dottie"],
    "barbara": ["barb"],
    "olga": [],
    "yusuf": [],
    "ingrid": [],
    "priya": [],
    "kwame": [],
    "siobhan": [],
    "mateo": [],
    "astrid": [],
    "hiroshi": [],
    "zofia": [],
    "tariq": [],
    "lucia": [],
    "gunnar": [],
    "amara": [],
    "dmitri": [],
    "fatima": [],
    "connor": [],
    "leilani": [],
    "bjorn": [],
    "esperanza": [],
}
FAMILY = [
    "smith", "johnson", "mueller", "schmidt", "garcia", "martinez", "nguyen", "kowalski",
    "rossi", "dubois", "jansen", "andersson", "okafor", "tanaka", "oconnor", "fischer",
    "weber", "wagner", "becker", "hoffmann", "novak", "horvat", "petrov", "ivanova",
    "silva", "santos", "pereira", "costa", "moreau", "laurent", "bernard", "leroy",
    "de vries", "van dijk", "bakker", "visser", "nielsen", "hansen", "larsen", "berg",
    "lindqvist", "virtanen", "korhonen", "nowak", "wojcik", "kaminski", "lewandowski",
    "zielinski", "szabo", "toth", "kovacs", "popescu", "ionescu", "dimitrov", "georgiou",
    "papadopoulos", "yilmaz", "kaya", "demir", "sahin", "cohen", "levi", "friedman",
    "oneill", "murphy", "kelly", "walsh", "byrne", "ryan", "brennan", "macdonald",
    "campbell", "stewart", "robertson", "thomson", "anderson", "scott", "reid", "ross",
    "chowdhury", "rahman", "hossain", "singh", "kumar", "sharma", "patel", "gupta",
    "mehta", "iyer", "okonkwo", "mensah", "boateng", "diallo", "traore", "abebe",
]  # fmt: skip
STREETS = [
    "main street", "high street", "church road", "station road", "park avenue",
    "mill lane", "oak drive", "elm grove", "king street", "queen street", "bridge road",
    "green lane", "north road", "south street", "west end", "east parade", "river walk",
    "hill crescent", "forest way", "meadow close", "lake view", "castle street",
    "victoria road", "albert street", "market place", "chapel lane", "school lane",
    "garden terrace", "orchard way", "windmill hill",
]  # fmt: skip
DOMAINS = ["example.com", "example.org", "example.net", "example.de"]
LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass
class Person:
    number: int
    given: str
    family: str
    birth: date
    email: str
    phone: str
    street: str
    postcode: str
    household: int | None = None


@dataclass
class People:
    records: list[dict[str, str | None]]
    truth: list[int]  # per record, the person it was made from
    people: list[Person]
    household_of: dict[int, int] = field(default_factory=dict)  # person -> household

    @property
    def size(self) -> int:
        return len(self.records)

    def columns(self) -> Columns:
        names = sorted({name for record in self.records for name in record})
        return Columns(
            {name: [record.get(name) for record in self.records] for name in names},
            len(self.records),
        )


def _typo(rng: random.Random, word: str) -> str:
    if len(word) < 4:
        return word
    position = rng.randrange(1, len(word) - 1)  # keep the first letter
    edit = rng.choice(["swap", "drop", "replace", "insert"])
    if edit == "swap":
        chars = list(word)
        chars[position], chars[position + 1] = chars[position + 1], chars[position]
        return "".join(chars)
    if edit == "drop":
        return word[:position] + word[position + 1 :]
    if edit == "replace":
        return word[:position] + rng.choice(LETTERS) + word[position + 1 :]
    return word[:position] + rng.choice(LETTERS) + word[position:]


def _forms(given: str) -> list[str]:
    return [given, *GIVEN[given]]


def _far_apart(a: str, b: str) -> bool:
    """No form of one given name is anywhere near a form of the other (so that the
    given-name comparison puts them at its `else` level even after a typo)."""
    return all(
        JaroWinkler.normalized_similarity(x, y) < 0.7 and x[0] != y[0]
        for x in _forms(a)
        for y in _forms(b)
    )


def _person(rng: random.Random, number: int, given: str, family: str, birth: date) -> Person:
    return Person(
        number=number,
        given=given,
        family=family,
        birth=birth,
        email=f"{given}.{family.replace(' ', '')}{rng.randrange(1, 10_000)}@{rng.choice(DOMAINS)}",
        phone=f"+4930{rng.randrange(10**7, 10**8)}",
        street=f"{rng.choice(STREETS)} {rng.randrange(1, 200)}",
        postcode=f"{rng.randrange(10000, 99999)}",
    )


def _birth(rng: random.Random, year_from: int = 1940, year_to: int = 2005) -> date:
    start = date(year_from, 1, 1)
    return start + timedelta(days=rng.randrange((date(year_to, 12, 31) - start).days))


def _copy(rng: random.Random, person: Person, first: bool) -> dict[str, str | None]:
    """One record of the person; the first copy is clean, the others noisy."""
    given, family = person.given, person.family
    birth: str | None = person.birth.isoformat()
    email: str | None = person.email
    phone: str | None = person.phone
    street: str | None = person.street
    postcode: str | None = person.postcode
    if not first:
        roll = rng.random()
        if roll < 0.15 and GIVEN[given]:
            given = rng.choice(GIVEN[given])
        elif roll < 0.30:
            given = _typo(rng, given)
        if rng.random() < 0.15:
            family = _typo(rng, family)
        roll = rng.random()
        if roll < 0.15:
            birth = None
        elif roll < 0.20 and person.birth.day <= 12 and person.birth.day != person.birth.month:
            birth = f"{person.birth.year:04d}-{person.birth.day:02d}-{person.birth.month:02d}"
        elif roll < 0.25:
            birth = (person.birth + timedelta(days=1)).isoformat()
        roll = rng.random()
        if roll < 0.35:
            email = None
        elif roll < 0.45:
            local, _, domain = person.email.partition("@")
            email = f"{local}@{rng.choice([d for d in DOMAINS if d != domain])}"
        if rng.random() < 0.35:
            phone = None
        if rng.random() < 0.15:
            street = None
        if rng.random() < 0.1:
            postcode = None
    return {
        "given_name": given,
        "family_name": family,
        "birth_date": birth,
        "email": email,
        "phone": phone,
        "street": street,
        "postcode": postcode,
    }


def generate(
    people: int = 2000,
    *,
    seed: int = 7,
    household_share: float = 0.2,
    shared_mailbox: float = 0.0,
) -> People:
    """`shared_mailbox`: the share of households whose members also share one email."""
    rng = random.Random(seed)
    persons: list[Person] = []
    household_of: dict[int, int] = {}
    households = 0
    while len(persons) < people:
        family = rng.choice(FAMILY)
        if rng.random() < household_share:
            size = rng.choice([2, 2, 3, 4])
            names: list[str] = []
            while len(names) < size:
                candidate = rng.choice(list(GIVEN))
                if all(_far_apart(candidate, other) for other in names):
                    names.append(candidate)
            first = _person(rng, len(persons), names[0], family, _birth(rng, 1950, 1975))
            members = [first]
            for index, given in enumerate(names[1:], start=1):
                member = _person(rng, len(persons) + index, given, family, _birth(rng, 1976, 2005))
                member.street, member.postcode, member.phone = (
                    first.street,
                    first.postcode,
                    first.phone,  # the landline
                )
                members.append(member)
            if shared_mailbox and rng.random() < shared_mailbox:
                for member in members:
                    member.email = f"family.{family.replace(' ', '')}{households}@{DOMAINS[0]}"
            for member in members:
                member.household = households
                household_of[member.number] = households
            households += 1
            persons += members
        else:
            persons.append(_person(rng, len(persons), rng.choice(list(GIVEN)), family, _birth(rng)))
    records: list[dict[str, str | None]] = []
    truth: list[int] = []
    for person in persons:
        for copy in range(rng.choice([1, 2, 2, 3])):
            records.append(_copy(rng, person, first=copy == 0))
            truth.append(person.number)
    order = list(range(len(records)))
    rng.shuffle(order)
    return People([records[i] for i in order], [truth[i] for i in order], persons, household_of)
