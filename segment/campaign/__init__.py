"""Campaigns: the campaign file, consent and suppression, caps, the contact ledger, quiet hours.

Public entry points: :func:`load_campaign` and :func:`plan_contacts`.
"""

from __future__ import annotations

from segment.campaign.loader import load_campaign
from segment.campaign.model import Campaign, Channel, ContactStatus, RuleStatus

__all__ = ["Campaign", "Channel", "ContactStatus", "RuleStatus", "load_campaign"]
