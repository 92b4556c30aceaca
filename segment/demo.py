"""`segment demo`: the synthetic demo world, two campaigns, and a run of each.

Everything happens under one folder so a first look needs nothing else: the world
(`world/`: Census-format sources, the messy extract, the synthetic reference pack),
the campaign files (`campaigns/`), the working folder (`work/`), the contact ledger
(`ledger.sqlite`) and the vendor files (`exports/`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from segment import workdir as wd
from segment.log import get_logger
from segment.pipeline import RunResult, run_campaign
from segment.synth import write_demo_world
from segment.synth.extract import DEFAULT_REF_DATE

log = get_logger("demo")

_COMMON = """\
version: 1
sources:
  - {{path: ../world/extract/ehr-patients.csv}}
  - {{path: ../world/extract/ehr-events.csv}}
  - {{path: ../world/extract/crm-patients.csv}}
workdir: ../work
reference: ../world/reference
ledger: ../ledger.sqlite
destination: ../exports/{folder}
as_of: {as_of}
frequency_caps:
  - {{per_days: 7, max: 1}}
  - {{per_days: 30, max: 4}}
"""

COLORECTAL = """\
# Colorectal cancer screening outreach: SMS first, email as the fallback.
# The code is neutral: it is what vendors and file names see.
code: SPRING-OUTREACH
description: Adults 45-75 due for colorectal cancer screening (internal; never exported)
audience:
  all:
    colorectal-cancer-screening: due
channels: [sms, email]
consent:
  sms_phone_types: [mobile, unknown]
suppression:
  - {path: suppression/sms-opt-outs.csv, kind: opt_out}
quiet_hours: {start: "08:00", end: "21:00"}
schedule: {send_at: "10:00", timezone: America/New_York}
vendors:
  sms:
    profile: twilio
    fields: [first_name, language]
  email:
    # a clinically selected list is PHI: it goes to a vendor that signs a BAA (Mailchimp does not)
    profile: braze
    fields: [first_name, last_name, language]
"""

FLU = """\
# Seasonal flu vaccine reminder: email, with a printed-mail fallback.
code: FALL-OUTREACH
description: Adults without a flu vaccine this season (internal; never exported)
audience:
  all:
    flu-vaccine: due
  filters:
    age: {min: 18}
channels: [email, mail]
vendors:
  email:
    profile: braze
    fields: [first_name, last_name, language]
  mail:
    profile: mail
    fields: [first_name, last_name, address_line1, address_line2, city, state, zip5, language]
"""

#: a Twilio opt-out feedback file, as a vendor would send it back (fictional numbers)
OPT_OUTS = "From,Body,DateSent\n+16175550100,STOP,2025-11-03\n+15085550199,unsubscribe,2025-11-04\n"


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put things, and each campaign's run."""

    root: Path
    patients: int
    campaigns: list[Path]
    runs: list[RunResult]


def write_demo_campaigns(root: Path, as_of: dt.date) -> list[Path]:
    """Write the two demo campaign files (and the opt-out file one of them uses)."""
    folder = wd.ensure_private_dir(root / "campaigns")
    with wd.atomic_open(folder / "suppression" / "sms-opt-outs.csv", "w") as fh:
        fh.write(OPT_OUTS)
    paths = []
    for name, body, dest in (("colorectal-sms-email.yaml", COLORECTAL, "spring"),
                             ("flu-email-mail.yaml", FLU, "fall")):
        text = body + _COMMON.format(folder=dest, as_of=as_of.isoformat())
        with wd.atomic_open(folder / name, "w") as fh:
            fh.write(text)
        paths.append(folder / name)
    return paths


def run_demo(out: str | Path, patients: int = 10_000, seed: int = 0) -> DemoResult:
    """Generate the demo world and run both demo campaigns through the whole pipeline."""
    root = wd.ensure_private_dir(out)
    as_of = DEFAULT_REF_DATE
    write_demo_world(root / "world", patients, seed)
    log.info("demo world written", patients=patients)
    campaigns = write_demo_campaigns(root, as_of)
    runs = [run_campaign(path) for path in campaigns]
    return DemoResult(root, patients, campaigns, runs)
