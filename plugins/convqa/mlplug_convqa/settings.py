"""convqa's own settings, read from ``MLPLUG_CONVQA_*`` environment variables when asked for."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConvQASettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MLPLUG_CONVQA_", extra="ignore")

    #: Minutes a QA reviewer spends on one conversation (business value).
    minutes_per_review: float = Field(default=12.0, gt=0, le=600)
    #: Precision the auto-accepted predictions must keep on the holdout (business value).
    target_precision: float = Field(default=0.95, gt=0.5, le=1.0)
    #: Upper bound on the seconds ``explain`` spends; rows past it are left out. Occlusion
    #: explains about one MiniLM row a second on 2 cores: 30 s give the per-class summary
    #: 20-odd rows and keep ``make demo``, which explains twice, within its 10 minutes.
    explain_time_budget_s: float = Field(default=30.0, gt=0)


def get_convqa_settings() -> ConvQASettings:
    """Read now; never cached, so tests and long-lived servers see changes."""
    return ConvQASettings()
