"""Campaigns: the campaign file, consent and suppression, caps, the contact ledger, quiet hours.

Public entry points: :func:`load_campaign` and :func:`plan_contacts`.
"""

from __future__ import annotations

from segment.campaign.ledger import ContactLedger
from segment.campaign.loader import load_campaign
from segment.campaign.model import Campaign, Channel, ContactStatus, RuleStatus
from segment.campaign.select import PLAN_COLUMNS, plan_contacts
from segment.campaign.suppression import Suppression, load_suppression

__all__ = [
    "PLAN_COLUMNS",
    "Campaign",
    "Channel",
    "ContactLedger",
    "ContactStatus",
    "RuleStatus",
    "Suppression",
    "load_campaign",
    "load_suppression",
    "plan_contacts",
]
