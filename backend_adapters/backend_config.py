"""Connection settings shared by every adapter, validated once per request.

Valves arrive as loose strings typed by an admin; turning them into a checked
config here means a typo becomes one clear sentence, not a failure deep in an
HTTP library.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend_adapters.model_families import ThinkStart


def split_list(text: str) -> tuple[str, ...]:
    """`"a, b,,c"` → `("a", "b", "c")`: valves hold lists as comma-separated text."""
    return tuple(part.strip() for part in text.replace("\n", ",").split(",") if part.strip())


class BackendConfig(BaseModel):
    """Where a backend is and how patiently to talk to it."""

    model_config = ConfigDict(frozen=True)

    base_urls: tuple[str, ...] = Field(min_length=1)
    api_key: str = Field(default="", repr=False)
    connect_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=600.0, gt=0)
    verify_tls: bool = True
    max_concurrency: int = Field(default=0, ge=0)
    think_start: ThinkStart = "auto"
    models: tuple[str, ...] = ()

    @field_validator("base_urls")
    @classmethod
    def _urls_are_http(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"{parts.scheme or 'no'} scheme: base URLs must look like http://host:port")
        return tuple(url.rstrip("/") for url in urls)

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,) if self.api_key else ()


def config_error(exc: Exception) -> str:
    """A pydantic validation error as one sentence naming the bad valve."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        field_name = ".".join(str(p) for p in first.get("loc", ())) or "a valve"
        return f"The {field_name.upper()} setting is invalid: {first.get('msg', 'bad value')}."
    return f"The backend settings are invalid: {exc}."
