"""USPS Publication 28 abbreviations: street suffixes (C1), secondary units (C2), directionals.

Each map takes every spelling seen in addresses (the full word, the standard
abbreviation, common variants) to the Publication 28 standard abbreviation, so that
``North Main Street``, ``N. Main St`` and TIGER's ``N Main St`` normalize alike.
"""

from __future__ import annotations

_C1: dict[str, tuple[str, ...]] = {
    "ALY": ("ALLEY", "ALLEE", "ALLY"), "ANX": ("ANEX", "ANNEX", "ANNX"), "ARC": ("ARCADE",),
    "AVE": ("AV", "AVEN", "AVENU", "AVENUE", "AVN", "AVNUE"), "BYU": ("BAYOO", "BAYOU"),
    "BCH": ("BEACH",), "BND": ("BEND",), "BLF": ("BLUF", "BLUFF"), "BLFS": ("BLUFFS",),
    "BTM": ("BOT", "BOTTM", "BOTTOM"), "BLVD": ("BOUL", "BOULEVARD", "BOULV"),
    "BR": ("BRNCH", "BRANCH"), "BRG": ("BRDGE", "BRIDGE"), "BRK": ("BROOK",), "BRKS": ("BROOKS",),
    "BG": ("BURG",), "BGS": ("BURGS",), "BYP": ("BYPA", "BYPAS", "BYPASS", "BYPS"),
    "CP": ("CAMP", "CMP"), "CYN": ("CANYN", "CANYON", "CNYN"), "CPE": ("CAPE",),
    "CSWY": ("CAUSEWAY", "CAUSWA"), "CTR": ("CEN", "CENT", "CENTER", "CENTR", "CENTRE", "CNTER",
                                           "CNTR"),
    "CTRS": ("CENTERS",), "CIR": ("CIRC", "CIRCL", "CIRCLE", "CRCL", "CRCLE"), "CIRS": ("CIRCLES",),
    "CLF": ("CLIFF",), "CLFS": ("CLIFFS",), "CLB": ("CLUB",), "CMN": ("COMMON",),
    "CMNS": ("COMMONS",), "COR": ("CORNER",), "CORS": ("CORNERS",), "CRSE": ("COURSE",),
    "CT": ("COURT",), "CTS": ("COURTS",), "CV": ("COVE",), "CVS": ("COVES",), "CRK": ("CREEK",),
    "CRES": ("CRESCENT", "CRSENT", "CRSNT"), "CRST": ("CREST",), "XING": ("CROSSING", "CRSSNG"),
    "XRD": ("CROSSROAD",), "XRDS": ("CROSSROADS",), "CURV": ("CURVE",), "DL": ("DALE",),
    "DM": ("DAM",), "DV": ("DIV", "DIVIDE", "DVD"), "DR": ("DRIV", "DRIVE", "DRV"),
    "DRS": ("DRIVES",), "EST": ("ESTATE",), "ESTS": ("ESTATES",), "EXPY": ("EXP", "EXPR", "EXPRESS",
                                                                        "EXPRESSWAY", "EXPW"),
    "EXT": ("EXTENSION", "EXTN", "EXTNSN"), "EXTS": ("EXTENSIONS",), "FLS": ("FALLS",),
    "FRY": ("FERRY", "FRRY"), "FLD": ("FIELD",), "FLDS": ("FIELDS",), "FLT": ("FLAT",),
    "FLTS": ("FLATS",), "FRD": ("FORD",), "FRDS": ("FORDS",), "FRST": ("FOREST", "FORESTS"),
    "FRG": ("FORG", "FORGE"), "FRGS": ("FORGES",), "FRK": ("FORK",), "FRKS": ("FORKS",),
    "FT": ("FORT", "FRT"), "FWY": ("FREEWAY", "FREEWY", "FRWAY", "FRWY"), "GDN": ("GARDEN",
                                                                             "GARDN", "GRDEN",
                                                                             "GRDN"),
    "GDNS": ("GARDENS", "GRDNS"), "GTWY": ("GATEWAY", "GATEWY", "GATWAY", "GTWAY"),
    "GLN": ("GLEN",), "GLNS": ("GLENS",), "GRN": ("GREEN",), "GRNS": ("GREENS",),
    "GRV": ("GROV", "GROVE"), "GRVS": ("GROVES",), "HBR": ("HARB", "HARBOR", "HARBR", "HRBOR"),
    "HBRS": ("HARBORS",), "HVN": ("HAVEN",), "HTS": ("HT", "HEIGHTS"),
    "HWY": ("HIGHWAY", "HIGHWY", "HIWAY", "HIWY", "HWAY"), "HL": ("HILL",), "HLS": ("HILLS",),
    "HOLW": ("HLLW", "HOLLOW", "HOLLOWS", "HOLWS"), "INLT": ("INLET",), "IS": ("ISLAND", "ISLND"),
    "ISS": ("ISLANDS", "ISLNDS"), "ISLE": ("ISLES",), "JCT": ("JCTION", "JCTN", "JUNCTION",
                                                             "JUNCTN", "JUNCTON"),
    "JCTS": ("JCTNS", "JUNCTIONS"), "KY": ("KEY",), "KYS": ("KEYS",), "KNL": ("KNOL", "KNOLL"),
    "KNLS": ("KNOLLS",), "LK": ("LAKE",), "LKS": ("LAKES",), "LNDG": ("LANDING", "LNDNG"),
    "LN": ("LANE",), "LGT": ("LIGHT",), "LGTS": ("LIGHTS",), "LF": ("LOAF",), "LCK": ("LOCK",),
    "LCKS": ("LOCKS",), "LDG": ("LDGE", "LODG", "LODGE"), "LOOP": ("LOOPS",), "MALL": (),
    "MNR": ("MANOR",), "MNRS": ("MANORS",), "MDW": ("MEADOW",), "MDWS": ("MDW", "MEADOWS",
                                                                       "MEDOWS"),
    "MEWS": (), "ML": ("MILL",), "MLS": ("MILLS",), "MSN": ("MISSN", "MSSN", "MISSION"),
    "MTWY": ("MOTORWAY",), "MT": ("MNT", "MOUNT"), "MTN": ("MNTAIN", "MNTN", "MOUNTAIN",
                                                           "MOUNTIN", "MTIN"),
    "MTNS": ("MNTNS", "MOUNTAINS"), "NCK": ("NECK",), "ORCH": ("ORCHARD", "ORCHRD"),
    "OVAL": ("OVL",), "OPAS": ("OVERPASS",), "PARK": ("PRK", "PARKS"),
    "PKWY": ("PARKWAY", "PARKWY", "PKWAY", "PKY", "PARKWAYS", "PKWYS"), "PASS": (),
    "PSGE": ("PASSAGE",), "PATH": ("PATHS",), "PIKE": ("PIKES",), "PNE": ("PINE",),
    "PNES": ("PINES",), "PL": ("PLACE",), "PLN": ("PLAIN",), "PLNS": ("PLAINS",),
    "PLZ": ("PLAZA", "PLZA"), "PT": ("POINT",), "PTS": ("POINTS",), "PRT": ("PORT",),
    "PRTS": ("PORTS",), "PR": ("PRAIRIE", "PRR"), "RADL": ("RAD", "RADIAL", "RADIEL"),
    "RAMP": (), "RNCH": ("RANCH", "RANCHES", "RNCHS"), "RPD": ("RAPID",), "RPDS": ("RAPIDS",),
    "RST": ("REST",), "RDG": ("RDGE", "RIDGE"), "RDGS": ("RIDGES",), "RIV": ("RIVER", "RVR",
                                                                          "RIVR"),
    "RD": ("ROAD",), "RDS": ("ROADS",), "RTE": ("ROUTE", "RT"), "ROW": (), "RUE": (), "RUN": (),
    "SHL": ("SHOAL",), "SHLS": ("SHOALS",), "SHR": ("SHOAR", "SHORE"), "SHRS": ("SHOARS", "SHORES"),
    "SKWY": ("SKYWAY",), "SPG": ("SPNG", "SPRING", "SPRNG"), "SPGS": ("SPNGS", "SPRINGS", "SPRNGS"),
    "SPUR": ("SPURS",), "SQ": ("SQR", "SQRE", "SQU", "SQUARE"), "SQS": ("SQRS", "SQUARES"),
    "STA": ("STATION", "STATN", "STN"), "STRA": ("STRAV", "STRAVEN", "STRAVENUE", "STRAVN",
                                                "STRVN", "STRVNUE"),
    "STRM": ("STREAM", "STREME"), "ST": ("STREET", "STRT", "STR"), "STS": ("STREETS",),
    "SMT": ("SUMIT", "SUMITT", "SUMMIT"), "TER": ("TERR", "TERRACE"), "TRWY": ("THROUGHWAY",),
    "TRCE": ("TRACE", "TRACES"), "TRAK": ("TRACK", "TRACKS", "TRK", "TRKS"),
    "TRFY": ("TRAFFICWAY",), "TRL": ("TRAIL", "TRAILS", "TRLS"), "TRLR": ("TRAILER", "TRLRS"),
    "TUNL": ("TUNEL", "TUNLS", "TUNNEL", "TUNNELS", "TUNNL"), "TPKE": ("TRNPK", "TURNPIKE",
                                                                      "TURNPK"),
    "UPAS": ("UNDERPASS",), "UN": ("UNION",), "UNS": ("UNIONS",), "VLY": ("VALLEY", "VALLY",
                                                                         "VLLY"),
    "VLYS": ("VALLEYS",), "VIA": ("VDCT", "VIADCT", "VIADUCT"), "VW": ("VIEW",), "VWS": ("VIEWS",),
    "VLG": ("VILL", "VILLAG", "VILLAGE", "VILLG", "VILLIAGE"), "VLGS": ("VILLAGES",),
    "VL": ("VILLE",), "VIS": ("VIST", "VISTA", "VST", "VSTA"), "WALK": ("WALKS",), "WALL": (),
    "WAY": ("WY",), "WAYS": (), "WL": ("WELL",), "WLS": ("WELLS",),
}

#: every street-suffix spelling -> its Publication 28 (Appendix C1) abbreviation
STREET_TYPES: dict[str, str] = {}
for _abbr, _variants in _C1.items():
    STREET_TYPES[_abbr] = _abbr
    for _v in _variants:
        STREET_TYPES.setdefault(_v, _abbr)
STREET_TYPES["MDW"] = "MDW"  # both a standard abbreviation and a variant of MEADOWS

#: directional words -> Publication 28 abbreviations
DIRECTIONALS: dict[str, str] = {
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W", "NORTHEAST": "NE",
    "NORTHWEST": "NW", "SOUTHEAST": "SE", "SOUTHWEST": "SW", "N": "N", "S": "S", "E": "E",
    "W": "W", "NE": "NE", "NW": "NW", "SE": "SE", "SW": "SW",
}

#: secondary unit designators (Appendix C2) -> abbreviations
UNIT_DESIGNATORS: dict[str, str] = {
    "APARTMENT": "APT", "APT": "APT", "BASEMENT": "BSMT", "BSMT": "BSMT", "BUILDING": "BLDG",
    "BLDG": "BLDG", "DEPARTMENT": "DEPT", "DEPT": "DEPT", "FLOOR": "FL", "FL": "FL",
    "FRONT": "FRNT", "FRNT": "FRNT", "HANGAR": "HNGR", "HNGR": "HNGR", "LOBBY": "LBBY",
    "LBBY": "LBBY", "LOT": "LOT", "LOWER": "LOWR", "LOWR": "LOWR", "OFFICE": "OFC", "OFC": "OFC",
    "PENTHOUSE": "PH", "PH": "PH", "PIER": "PIER", "REAR": "REAR", "ROOM": "RM", "RM": "RM",
    "SIDE": "SIDE", "SLIP": "SLIP", "SPACE": "SPC", "SPC": "SPC", "STOP": "STOP", "SUITE": "STE",
    "STE": "STE", "UNIT": "UNIT", "UPPER": "UPPR", "UPPR": "UPPR",
}

#: ordinal words -> the digit form TIGER uses (``First St`` is ``1st St``)
ORDINALS: dict[str, str] = {
    word: f"{n}{'TH' if 10 <= n % 100 <= 20 else {1: 'ST', 2: 'ND', 3: 'RD'}.get(n % 10, 'TH')}"
    for n, word in enumerate(
        ("FIRST SECOND THIRD FOURTH FIFTH SIXTH SEVENTH EIGHTH NINTH TENTH ELEVENTH TWELFTH "
         "THIRTEENTH FOURTEENTH FIFTEENTH SIXTEENTH SEVENTEENTH EIGHTEENTH NINETEENTH "
         "TWENTIETH").split(),
        start=1,
    )
}
