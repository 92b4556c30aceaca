"""The one base of segment's configuration models (pydantic), shared by every stage.

Rule files, the bundled HP2030 map, mapping files and campaign files are validated into
frozen models that refuse unknown keys (CONVENTIONS item 4): a misspelt key is an error
naming it, never silently ignored, and a loaded object cannot change afterwards.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FrozenModel(BaseModel):
    """Base for configuration models: unknown keys are errors, objects are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)
