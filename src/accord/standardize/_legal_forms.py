"""Legal forms: canonical spelling -> the spellings found in source systems.

Spellings are compared by a key that ignores case, accents, periods, spaces and "&"
("G.m.b.H." and "gmbh" are the same), so only genuinely different spellings are listed.
"""

from __future__ import annotations

LEGAL_FORMS: dict[str, tuple[str, ...]] = {
    # Germany, Austria, Switzerland
    "GmbH": (
        "GmbH",
        "G.m.b.H.",
        "GesmbH",
        "Ges.m.b.H.",
        "Gesellschaft mbH",
        "Gesellschaft mit beschränkter Haftung",
        "Gesellschaft mit beschraenkter Haftung",
    ),
    "gGmbH": ("gGmbH", "gemeinnützige GmbH", "gemeinnuetzige GmbH"),
    "AG": ("AG", "Aktiengesellschaft"),
    "SE": ("SE", "Societas Europaea"),
    "KGaA": ("KGaA", "Kommanditgesellschaft auf Aktien"),
    "GmbH & Co. KG": (
        "GmbH & Co. KG",
        "GmbH u. Co. KG",
        "GmbH und Co. KG",
        "GmbH + Co. KG",
        "GmbH & Co. Kommanditgesellschaft",
    ),
    "GmbH & Co. KGaA": ("GmbH & Co. KGaA",),
    "AG & Co. KG": ("AG & Co. KG", "AG u. Co. KG", "AG und Co. KG"),
    "AG & Co. KGaA": ("AG & Co. KGaA",),
    "SE & Co. KGaA": ("SE & Co. KGaA",),
    "UG (haftungsbeschränkt) & Co. KG": (
        "UG (haftungsbeschränkt) & Co. KG",
        "UG (haftungsbeschraenkt) & Co. KG",
        "UG & Co. KG",
    ),
    "UG (haftungsbeschränkt)": (
        "UG (haftungsbeschränkt)",
        "UG (haftungsbeschraenkt)",
        "UG (haftungsbeschr.)",
        "UG (hb)",
        "UG",
    ),
    "KG": ("KG", "Kommanditgesellschaft"),
    "OHG": ("OHG", "Offene Handelsgesellschaft"),
    "GbR": ("GbR", "Gesellschaft bürgerlichen Rechts", "Gesellschaft buergerlichen Rechts"),
    "PartG mbB": ("PartG mbB", "Partnerschaftsgesellschaft mbB"),
    "PartG": ("PartG", "Partnerschaftsgesellschaft"),
    "e.K.": ("e.K.", "e.Kfm.", "e.Kfr.", "eingetragener Kaufmann", "eingetragene Kauffrau"),
    "e.V.": ("e.V.", "eingetragener Verein"),
    "eG": ("eG", "eingetragene Genossenschaft"),
    # United Kingdom, Ireland, United States, Commonwealth
    "Ltd": ("Ltd", "Limited"),
    "Pty Ltd": ("Pty Ltd", "Pty Limited", "Proprietary Limited"),
    "plc": ("plc", "Public Limited Company"),
    "LLP": ("LLP", "Limited Liability Partnership"),
    "LP": ("LP", "Limited Partnership"),
    "LLC": ("LLC", "Limited Liability Company"),
    "PLLC": ("PLLC",),
    "Inc": ("Inc", "Incorporated"),
    "Corp": ("Corp", "Corporation"),
    # Netherlands, Belgium
    "BV": ("BV", "Besloten Vennootschap"),
    "NV": ("NV", "Naamloze Vennootschap"),
    "VOF": ("VOF", "Vennootschap onder Firma"),
    "CV": ("CV", "Commanditaire Vennootschap"),
    "BVBA": ("BVBA",),
    "VZW": ("VZW",),
    # France, Luxembourg, Spain, Italy, Latin America
    "SARL": ("SARL", "S.à r.l.", "Société à responsabilité limitée"),
    "SA": ("SA", "Société anonyme", "Sociedad anónima"),
    "SAS": ("SAS", "Société par actions simplifiée"),
    "SASU": ("SASU",),
    "EURL": ("EURL",),
    "SNC": ("SNC", "Société en nom collectif"),
    "SCI": ("SCI",),
    "SL": ("SL", "Sociedad Limitada"),
    "SLU": ("SLU",),
    "SRL": ("SRL", "Società a responsabilità limitata"),
    "SpA": ("SpA", "Società per azioni"),
    "SA de CV": ("SA de CV",),
    "Ltda": ("Ltda",),
    # Nordics, Central Europe
    "AB": ("AB", "Aktiebolag"),
    "A/S": ("A/S",),
    "AS": ("AS",),
    "ASA": ("ASA",),
    "ApS": ("ApS",),
    "Oy": ("Oy",),
    "Oyj": ("Oyj",),
    "Sp. z o.o.": ("Sp. z o.o.", "Spółka z ograniczoną odpowiedzialnością"),
    "s.r.o.": ("s.r.o.", "spol. s r.o."),
    "Kft": ("Kft",),
}

# Forms whose bare letters are also ordinary words or abbreviations ("Hotel Spa", "Acme EV"):
# recognized only when written with a period or exactly in the canonical spelling.
AMBIGUOUS: frozenset[str] = frozenset({"e.K.", "e.V.", "SpA", "SL", "LP", "CV", "AS"})

# Forms that may also come first ("SARL Boulangerie Martin", "NV Bekaert").
LEADING: frozenset[str] = frozenset(
    {"SARL", "SAS", "SASU", "EURL", "SCI", "SNC", "SA", "BV", "NV", "VOF", "BVBA", "VZW"}
)
