"""Vendor exports: profiles, CSV writing, manifests, encryption and delivery."""

from __future__ import annotations
