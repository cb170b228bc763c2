"""All settings in one validated class, read from the environment when asked for."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplug.errors import SettingsError


class Settings(BaseSettings):
    """Environment variables prefixed ``MLPLUG_`` (``MLPLUG_STORE``, ``MLPLUG_HOME``, ...)."""

    model_config = SettingsConfigDict(env_prefix="MLPLUG_", extra="ignore")

    #: State directory for the embedded defaults (local store, Ray scratch, the embedded
    #: Prefect database). Unset: see :func:`default_home`.
    home: Path = Field(default_factory=lambda: default_home())
    #: Store URL: ``file:///abs/dir`` or ``s3://bucket/prefix``. Empty means ``<home>/store``.
    store: str = ""
    #: Allow a ``file://`` store inside a Kubernetes pod: only for a volume every pod mounts.
    allow_local_store: bool = False
    #: Endpoint for S3-compatible servers (MinIO, moto); empty means AWS.
    s3_endpoint_url: str | None = None
    #: Name of a prefect-aws ``AwsCredentials`` block; empty means the boto3 default chain.
    aws_credentials_block: str | None = None
    #: How long the report links of Prefect artifacts stay valid, on stores that sign them (S3;
    #: at most 7 days with SigV4).
    report_link_seconds: int = Field(default=7 * 24 * 3600, ge=60, le=7 * 24 * 3600)
    #: Attempts per S3 call before the store counts as unreachable.
    s3_max_attempts: int = Field(default=5, ge=1, le=20)
    #: Seconds to wait for a connection to the S3 endpoint, per attempt.
    s3_connect_timeout: float = Field(default=5.0, gt=0)
    #: Seconds to wait for the S3 endpoint to send the next bytes of an answer, per attempt.
    s3_read_timeout: float = Field(default=20.0, gt=0)
    #: Seconds an S3 call may spend in all its attempts: no attempt starts that could end
    #: later. With the defaults an unreachable or silent endpoint fails a call within 60 s,
    #: which fits a Kubernetes startup probe of a few minutes. It does not cut short an
    #: attempt that is receiving data (a large download).
    s3_retry_seconds: float = Field(default=60.0, gt=0)
    #: Most columns a data file may have (checked on its header before its rows are read):
    #: a table far wider than any task's schema costs minutes of parsing and profiling.
    max_columns: int = Field(default=2000, ge=1)
    #: Comma-separated allow-list of plugin names; unset loads every installed plugin.
    load_plugins: str | None = None
    #: Comma-separated deny-list of plugin names.
    disable_plugins: str | None = None
    #: Profile the traffic that servers answer and ``mlplug predict`` scores into the store.
    monitoring: bool = True
    #: Seconds a server buffers traffic before writing a profile of it.
    profile_flush_seconds: float = Field(default=60.0, gt=0)
    #: Buffered rows that make a server write a profile before the interval is up.
    profile_max_rows: int = Field(default=50_000, ge=1)
    #: Rows per second a server profiles in full; above it, a uniform sample of about this
    #: many rows per second (``mlplug.monitoring.sampling``). 0 profiles every row. 20 rows/s
    #: put 1,200 rows in a one-minute profile and 72,000 in an hour, against the monitor's
    #: ``min_rows`` of 500; more rows do not sharpen a decision the reference's noise bounds.
    profile_rate: float = Field(default=20.0, ge=0)
    #: A fixed share of answered requests a server profiles, on top of ``profile_rate``
    #: (drift compares shares, so a uniform sample does not bias it).
    profile_sample: float = Field(default=1.0, gt=0, le=1)
    #: ``host:port`` of an existing Ray cluster's head (its GCS) to tune on; empty starts a
    #: local Ray for each tuning run. The token comes from Ray's own ``RAY_AUTH_*`` variables.
    ray_address: str = ""
    #: With ``ray_address``: make the machine that runs the flow a zero-CPU node of the
    #: cluster for the tuning step, which Ray requires of a driver. Turn off where that
    #: machine already is a node (the flow runs on the head).
    ray_driver_node: bool = True

    @field_validator("home")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @model_validator(mode="after")
    def _one_attempt_fits_the_retry_time(self) -> Settings:
        one = self.s3_connect_timeout + self.s3_read_timeout
        if self.s3_retry_seconds < one:
            raise ValueError(
                f"MLPLUG_S3_RETRY_SECONDS ({self.s3_retry_seconds:g}) must be at least "
                f"MLPLUG_S3_CONNECT_TIMEOUT + MLPLUG_S3_READ_TIMEOUT ({one:g}), the time one attempt may take"
            )
        return self

    @property
    def store_url(self) -> str:
        return self.store or (self.home / "store").as_uri()


#: The state directory's name, in a project checkout or in the home directory.
STATE_DIR = ".mlplug"


def default_home(cwd: Path | None = None) -> Path:
    """MLPLUG_HOME when it is not set: the nearest ``.mlplug`` directory in the current
    directory or one of its parents, as git finds ``.git`` (``make install`` creates one in
    the checkout, so commands run anywhere inside it share its state), else ``~/.mlplug``.

    A directory owned by another user is passed over: state holds models that are loaded
    with pickle, so a ``.mlplug`` that someone else planted in ``/tmp`` must not be used.
    """
    try:
        here = (cwd or Path.cwd()).resolve()
    except OSError:  # the current directory was removed
        here = None
    if here is not None:
        for folder in (here, *here.parents):
            candidate = folder / STATE_DIR
            if candidate.is_dir() and _owned_by_me(candidate):
                return candidate
    return Path.home() / STATE_DIR


def _owned_by_me(path: Path) -> bool:
    getuid = getattr(os, "getuid", None)
    return getuid is None or path.stat().st_uid == getuid()


def get_settings() -> Settings:
    """Read settings now; never cached, so tests and long-lived servers see changes. A value
    mlplug cannot use is a :class:`SettingsError` naming the variable, not a traceback."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None


def settings_error(exc: ValidationError) -> SettingsError:
    """One line naming each ``MLPLUG_*`` variable a settings class refused, and why."""
    problems = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"]:
            name = f"MLPLUG_{str(error['loc'][0]).upper()}"
            message = f"{name}={error.get('input')!r}: {message}"
        problems.append(message)
    return SettingsError(f"invalid settings: {'; '.join(problems)}")
