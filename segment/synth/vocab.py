"""Vocabularies for synthetic data: names, places, languages and the event catalogue.

Everything here is invented or public vocabulary (code systems, OMB categories).
The distributions are rough but plausible for a New England health-system panel.
"""

from __future__ import annotations

from dataclasses import dataclass

FEMALE_FIRST = (
    "Mary Patricia Jennifer Linda Elizabeth Barbara Susan Jessica Sarah Karen Lisa Nancy "
    "Betty Margaret Sandra Ashley Kimberly Emily Donna Michelle Carol Amanda Dorothy Melissa "
    "Deborah Stephanie Rebecca Sharon Laura Cynthia Kathleen Amy Angela Shirley Anna Brenda "
    "Pamela Emma Nicole Helen Samantha Katherine Christine Debra Rachel Carolyn Janet "
    "Catherine Maria Heather Diane Ruth Julie Olivia Joyce Virginia Victoria Kelly Lauren "
    "Christina Joan Evelyn Judith Megan Andrea Cheryl Hannah Jacqueline Martha Gloria Teresa "
    "Ann Sara Madison Frances Kathryn Janice Jean Abigail Alice Judy Sophia Grace Denise Amber "
    "Doris Marilyn Danielle Beverly Isabella Theresa Diana Natalie Brittany Charlotte Marie "
    "Kayla Alexis Lori Guadalupe Rosa Lucia Ana Carmen Yolanda Fabiola Nadege Mei Xiu Linh "
    "Thuy Mai Fernanda Beatriz Daniela Valentina Camila"
).split()

MALE_FIRST = (
    "James Robert John Michael David William Richard Joseph Thomas Christopher Charles Daniel "
    "Matthew Anthony Mark Donald Steven Paul Andrew Joshua Kenneth Kevin Brian George Timothy "
    "Ronald Edward Jason Jeffrey Ryan Jacob Gary Nicholas Eric Jonathan Stephen Larry Justin "
    "Scott Brandon Benjamin Samuel Gregory Alexander Frank Patrick Raymond Jack Dennis Jerry "
    "Tyler Aaron Jose Adam Nathan Henry Douglas Zachary Peter Kyle Ethan Walter Noah Jeremy "
    "Christian Keith Roger Terry Gerald Harold Sean Austin Carl Arthur Lawrence Dylan Jesse "
    "Jordan Bryan Billy Joe Bruce Gabriel Logan Albert Willie Alan Juan Wayne Elijah Randy "
    "Roy Vincent Ralph Eugene Russell Bobby Mason Philip Louis Luis Carlos Miguel Jean-Pierre "
    "Wei Jian Minh Tuan Duc Joao Pedro Rafael Mateus"
).split()

LAST = (
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
    "Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris "
    "Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly "
    "Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza "
    "Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Sullivan "
    "O'Brien McCarthy Fitzgerald Doherty O'Connor Walsh Ryan Kennedy Murray Sousa Silva "
    "Pereira Costa Oliveira Santos Ferreira Medeiros Pierre Jean-Baptiste Joseph Charles "
    "Louis Desir Tran Pham Le Hoang Vu Chen Wang Li Zhang Liu Huang Wong Chan Cohen Levine "
    "Goldberg Kowalski Nowak Rossi Russo Romano Caruso Leblanc Gagnon Cote Bouchard Ali Khan"
).split()

#: formal name -> common nickname (ingest should not assume these are the same person)
NICKNAMES = {
    "William": "Bill",
    "Robert": "Bob",
    "Richard": "Dick",
    "James": "Jim",
    "Joseph": "Joe",
    "Thomas": "Tom",
    "Michael": "Mike",
    "Christopher": "Chris",
    "Daniel": "Dan",
    "Anthony": "Tony",
    "Edward": "Ed",
    "Kenneth": "Ken",
    "Steven": "Steve",
    "Timothy": "Tim",
    "Elizabeth": "Liz",
    "Margaret": "Peggy",
    "Patricia": "Pat",
    "Jennifer": "Jen",
    "Katherine": "Kate",
    "Deborah": "Debbie",
    "Rebecca": "Becky",
    "Susan": "Sue",
    "Kimberly": "Kim",
    "Victoria": "Vicky",
}

STREET_BASES = (
    "Main Oak Elm Maple Pine Cedar Washington Lincoln Park Highland School Church Pleasant "
    "Chestnut Spring Union Summer Winter Water Prospect Central Mill Grove Walnut Cherry Hill "
    "Forest Lake River Bridge Franklin Jefferson Adams Madison Liberty Center Granite Beacon "
    "Putnam Sycamore Willow Birch Hawthorne Laurel Magnolia Orchard Meadow Valley Ridge "
    "Sunset Pond Brook Greenwood Fairview Lakeview Hillside Woodland Academy Bay Canal "
    "Depot Railroad Mechanic Pearl Cottage Front High Market Charles Warren Hancock Everett "
    "Lowell Dudley Sherman Grant Jackson Monroe Quincy Auburn Chapel Crescent Dexter Elliot"
).split()

STREET_TYPES = ("St", "Ave", "Rd", "Ln", "Dr", "Way", "Ter", "Pl", "Ct", "Blvd", "Cir", "Pkwy")

#: USPS Publication 28 abbreviation -> a long form writers use
STREET_TYPE_LONG = {
    "St": "Street",
    "Ave": "Avenue",
    "Rd": "Road",
    "Ln": "Lane",
    "Dr": "Drive",
    "Way": "Way",
    "Ter": "Terrace",
    "Pl": "Place",
    "Ct": "Court",
    "Blvd": "Boulevard",
    "Cir": "Circle",
    "Pkwy": "Parkway",
    "Rte": "Route",
    "Hwy": "Highway",
}

DIRECTIONAL_LONG = {"N": "North", "S": "South", "E": "East", "W": "West"}

#: invented town names for the demo region
TOWNS = (
    "Harrowfield", "Elmstead", "Kingsbrook", "Marlow Falls", "Westbrook", "Cedar Hollow",
    "Ashby Mills", "Stonefield", "Fairhaven Junction", "Pine Ridge", "Oakhurst", "Millbrook",
    "Glenford", "Thornbury", "Willow Bend", "Northgate", "Halden", "Brookvale", "Copper Hill",
    "Easton Mills", "Larkspur",
)

CORE_CITY = "Riverton"

#: area codes used in Massachusetts; numbers use the 555 exchange
AREA_CODES = ("617", "508", "781", "978", "413", "774", "857", "339", "351")

EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")

#: (canonical language, weight within group) per raw spellings seen in extracts
LANGUAGE_SPELLINGS = {
    "en": ("English", "English", "English", "en", "ENG", "english"),
    "es": ("Spanish", "Spanish", "spa", "es", "Español", "SPANISH"),
    "pt": ("Portuguese", "por", "pt", "Portuguese (Brazil)"),
    "ht": ("Haitian Creole", "hat", "Creole", "ht"),
    "zh": ("Chinese", "Mandarin", "Cantonese", "zh", "chi"),
    "vi": ("Vietnamese", "vie", "vi"),
    "ru": ("Russian", "rus"),
    "ar": ("Arabic", "ara"),
}
LANGUAGE_UNKNOWN = ("", "Unknown", "Declined", "Other")

RACES = (
    "White",
    "Black or African American",
    "Asian",
    "American Indian or Alaska Native",
    "Native Hawaiian or Other Pacific Islander",
    "Other Race",
)
RACE_UNKNOWN = ("", "Declined", "Unknown")
ETHNICITIES = ("Hispanic or Latino", "Not Hispanic or Latino")
ETHNICITY_UNKNOWN = ("", "Unknown", "Declined")


@dataclass(frozen=True)
class EventKind:
    """One kind of clinical event and how often it happens to whom.

    ``rate`` is events per eligible person-year (multiplied by a per-person engagement
    factor); ``codes`` are (event_type, code_system, code, weight) alternatives.
    """

    name: str
    sexes: str  # "F", "M" or "FM"
    min_age: float
    max_age: float
    rate: float
    codes: tuple[tuple[str, str, str, float], ...]
    #: only people with this condition flag (diabetes, ...) get it, or "" for everyone
    needs: str = ""
    #: a rate multiplier for people with the ``boost`` flag
    boost: str = ""
    boost_factor: float = 1.0
    engaged: bool = True  # scaled by the person's engagement factor
    unit: str = ""


P, CPT, HCPCS, SNOMED, LOINC, CVX, ICD, RX = (
    "procedure",
    "CPT",
    "HCPCS",
    "SNOMED",
    "LOINC",
    "CVX",
    "ICD10CM",
    "RXNORM",
)

EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind(
        "outpatient_visit", "FM", 0, 200, 1.05,
        (
            ("encounter", CPT, "99213", 30), ("encounter", CPT, "99214", 25),
            ("encounter", CPT, "99212", 8), ("encounter", CPT, "99215", 6),
            ("encounter", CPT, "99203", 4), ("encounter", CPT, "99204", 4),
            ("encounter", CPT, "99202", 2), ("encounter", CPT, "99205", 1),
            ("encounter", CPT, "99211", 3),
            ("encounter", SNOMED, "185349003", 5),  # encounter for check up
        ),
        boost="diabetes", boost_factor=1.8,
    ),
    EventKind(
        "telehealth_visit", "FM", 0, 200, 0.25,
        (
            ("encounter", CPT, "99421", 3), ("encounter", CPT, "99422", 3),
            ("encounter", CPT, "99423", 1), ("encounter", HCPCS, "G2012", 4),
        ),
    ),
    EventKind(
        "ed_visit", "FM", 0, 200, 0.16,
        (
            ("encounter", CPT, "99281", 1), ("encounter", CPT, "99282", 3),
            ("encounter", CPT, "99283", 6), ("encounter", CPT, "99284", 5),
            ("encounter", CPT, "99285", 3), ("encounter", SNOMED, "50849002", 2),
        ),
        engaged=False,
    ),
    EventKind(
        "annual_wellness", "FM", 65, 200, 0.65,
        (("encounter", HCPCS, "G0438", 1), ("encounter", HCPCS, "G0439", 6)),
    ),
    EventKind(
        "mammogram", "F", 40, 200, 0.55,
        (
            (P, CPT, "77067", 60), (P, CPT, "77063", 10), (P, CPT, "77065", 3),
            (P, CPT, "77066", 4), (P, HCPCS, "G0202", 8), (P, SNOMED, "71651007", 6),
        ),
    ),
    EventKind(
        "colonoscopy", "FM", 45, 200, 0.07,
        (
            (P, CPT, "45378", 50), (P, CPT, "45380", 20), (P, CPT, "45385", 12),
            (P, HCPCS, "G0105", 6), (P, HCPCS, "G0121", 6), (P, SNOMED, "73761001", 8),
        ),
    ),
    EventKind(
        "fit", "FM", 45, 200, 0.16,
        (
            (P, CPT, "82274", 40), (P, HCPCS, "G0328", 25),
            ("observation", LOINC, "29771-3", 15), ("observation", LOINC, "57905-2", 15),
        ),
    ),
    EventKind("stool_dna", "FM", 45, 200, 0.035, ((P, CPT, "81528", 1),)),
    EventKind("ct_colonography", "FM", 45, 200, 0.004, ((P, CPT, "74263", 1),)),
    EventKind("sigmoidoscopy", "FM", 45, 200, 0.004, ((P, CPT, "45330", 1),)),
    EventKind(
        "pap", "F", 21, 70, 0.28,
        (
            (P, CPT, "88175", 55), ("observation", LOINC, "10524-7", 30),
            (P, SNOMED, "90226004", 15),
        ),
    ),
    EventKind(
        "hpv", "F", 25, 70, 0.14,
        ((P, CPT, "87624", 60), ("observation", LOINC, "21440-3", 40)),
    ),
    EventKind(
        "flu_vaccine", "FM", 0.5, 200, 0.48,
        (
            ("immunization", CVX, "140", 20), ("immunization", CVX, "141", 8),
            ("immunization", CVX, "150", 20), ("immunization", CVX, "155", 5),
            ("immunization", CVX, "158", 15), ("immunization", CVX, "185", 6),
            ("immunization", CVX, "197", 10), ("immunization", CVX, "205", 8),
            ("immunization", CPT, "90686", 10), ("immunization", CPT, "90688", 5),
        ),
    ),
    EventKind(
        "covid_vaccine", "FM", 0.5, 200, 0.22,
        (
            ("immunization", CVX, "208", 30), ("immunization", CVX, "207", 25),
            ("immunization", CVX, "213", 10), ("immunization", CVX, "300", 8),
            ("immunization", CVX, "309", 8),
        ),
    ),
    EventKind("tdap", "FM", 7, 200, 0.09, (("immunization", CVX, "115", 1),)),
    EventKind(
        "pneumococcal", "FM", 60, 200, 0.08,
        (
            ("immunization", CVX, "33", 30), ("immunization", CVX, "133", 30),
            ("immunization", CVX, "215", 15), ("immunization", CVX, "216", 25),
        ),
    ),
    EventKind(
        "a1c", "FM", 18, 200, 0.22, (("observation", LOINC, "4548-4", 1),),
        boost="diabetes", boost_factor=11.0, unit="%",
    ),
    EventKind(
        "diabetes_dx", "FM", 18, 200, 1.6, (("condition", ICD, "E11.9", 1),), needs="diabetes",
    ),
    EventKind(
        "metformin", "FM", 18, 200, 1.2, (("medication", RX, "860975", 1),), needs="diabetes",
    ),
    EventKind(
        "mastectomy_hx", "F", 35, 200, 0.8, (("condition", ICD, "Z90.13", 1),),
        needs="mastectomy",
    ),
    EventKind(
        "colorectal_cancer", "FM", 40, 200, 0.9, (("condition", ICD, "C18.9", 1),),
        needs="crc",
    ),
    EventKind(
        "colectomy_hx", "FM", 40, 200, 0.6, (("condition", ICD, "Z90.49", 1),), needs="colectomy",
    ),
    EventKind(
        "hysterectomy_hx", "F", 30, 200, 0.6, (("condition", ICD, "Z90.710", 1),),
        needs="hysterectomy",
    ),
    EventKind(
        "hospice", "FM", 50, 200, 2.0, (("condition", ICD, "Z51.5", 1),), needs="hospice",
        engaged=False,
    ),
)

#: every (event_type, code_system) the generator can emit
CODE_SYSTEMS = frozenset(c[1] for k in EVENT_KINDS for c in k.codes)
