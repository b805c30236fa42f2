"""Server settings: one pydantic-settings tree, read from ``AVATARIUM_*`` variables.

Settings are built explicitly (``Settings()``) and passed to ``create_app``; nothing reads the
environment at import time, so tests and embedders can run several apps side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything an operator can configure. Each field maps to ``AVATARIUM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="AVATARIUM_", extra="ignore")

    data_dir: Path = Field(default=Path("./data"), description="Embedded database, audio, secret.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default SQLite.")
    redis_url: str | None = Field(default=None, description="Shared limiter backend (later).")
    secret_key: SecretStr | None = Field(default=None, description="HMAC / encryption secret.")
    public_base_url: str | None = Field(default=None, description="Base of audio URLs.")
    avatars_file: Path | None = Field(default=None, description="Extra avatar presets (JSON).")

    default_ai_provider: str = "local"
    default_tts_provider: str = "espeak"
    default_stt_provider: str = "whisper"

    provider_timeout_s: float = Field(default=30.0, gt=0)
    provider_max_retries: int = Field(default=2, ge=0, le=10)
    provider_retry_after_cap_s: float = Field(default=20.0, ge=0)

    # Cloud providers: configured when their key is set. Base URLs mean exactly what the
    # vendor SDKs' base URLs mean, so any compatible endpoint (or a test fake) can stand in.
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-4o-mini"
    groq_api_key: SecretStr | None = None
    groq_base_url: str = "https://api.groq.com/openai/v1"
    groq_model: str = "llama-3.1-8b-instant"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    anthropic_model: str = "claude-3-5-haiku-latest"
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    gemini_model: str = "gemini-2.0-flash"
    elevenlabs_api_key: SecretStr | None = None
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_model: str = "eleven_multilingual_v2"
    google_tts_api_key: SecretStr | None = None
    google_tts_base_url: str = "https://texttospeech.googleapis.com"
    google_tts_model: str = ""
    # Speech to text: OpenAI and Groq share their LLM keys and base URLs.
    openai_stt_model: str = "whisper-1"
    groq_stt_model: str = "whisper-large-v3-turbo"
    deepgram_api_key: SecretStr | None = None
    deepgram_base_url: str = "wss://api.deepgram.com"
    deepgram_model: str = "nova-2"
    # Knowledge retrieval's embedding model: "e5" (embedded) or "openai" (its /embeddings,
    # with the OpenAI key and base URL above).
    embedding_provider: str = "e5"
    openai_embedding_model: str = "text-embedding-3-small"
    cloud_max_tokens: int = Field(default=300, ge=1, le=8192)

    ai_fallback: str = ""
    tts_fallback: str = ""
    stt_fallback: str = ""
    fallback_cooldown_s: float = Field(default=30.0, ge=0)

    # Embedded model: bounded replies keep a 2-core machine responsive.
    local_threads: int = Field(default=2, ge=1, le=64)
    local_context_tokens: int = Field(default=2048, ge=256, le=32768)
    # Replies the embedded model works on at once (each holds a context of its own, about
    # 65 MB at 2,048 tokens, made at load); more wait in order of arrival.
    local_slots: int = Field(default=4, ge=1, le=64)
    local_max_tokens: int = Field(default=96, ge=1, le=4096)
    local_temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    local_model_path: Path | None = None
    # Embedded speech recognition (Whisper tiny.en): its threads, and another model
    # directory (CTranslate2 format) in place of the bundled one.
    whisper_threads: int = Field(default=2, ge=1, le=64)
    whisper_model_dir: Path | None = None
    # Voice input: the silence that ends a turn in continuous mode, how much speech a
    # barge-in needs, and how often a partial transcript is re-decoded while the user speaks.
    vad_silence_ms: int = Field(default=600, ge=100, le=10_000)
    vad_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    barge_in_ms: int = Field(default=250, ge=32, le=5_000)
    partial_interval_ms: int = Field(default=700, ge=200, le=10_000)
    # The newest stored messages a send reads as history (then trimmed to the model's
    # context); bounds a send's cost however long the conversation grows.
    history_max_messages: int = Field(default=100, ge=0, le=10_000)

    audio_url_ttl_s: int = Field(default=86_400, ge=60)
    # Where MP3s live: empty for the data directory, or s3://bucket/prefix for any
    # S3-compatible store shared by every host. Unset credentials fall back to the usual AWS
    # chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, an instance role).
    audio_store: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    idle_after_s: int = Field(default=1_800, ge=1)
    idempotency_ttl_s: int = Field(default=86_400, ge=60)
    limiter_lease_ttl_s: float = Field(default=30.0, gt=0)
    # Streams send a comment at least this often, so proxies keep an idle stream open.
    sse_heartbeat_s: float = Field(default=15.0, gt=0, le=15.0)
    client_token_ttl_s: int = Field(default=900, ge=10, le=86_400)
    log_level: str = "info"
    # One line per event on stderr: "text", or "json" (one object per line, for collectors).
    log_format: Literal["text", "json"] = "text"
    # Browsers on other origins: a comma-separated list of origins given CORS (empty: none).
    cors_origins: str = ""
    # Who may frame the web page (the CSP frame-ancestors sources; "'none'" forbids it).
    frame_ancestors: str = "'self'"
    # Slow or bloated request heads are cut off (slowloris): seconds to send the whole head,
    # and its largest size in bytes.
    header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_header_bytes: int = Field(default=16_384, ge=1_024, le=1_048_576)
    # An Idempotency-Key claim lives this long unless the work renews it, so a retry after
    # a crash goes through within about this many seconds.
    idempotency_lease_s: float = Field(default=4.0, gt=0, le=600)
    # Background jobs (document ingestion): a worker's lease on a job, renewed while it
    # works (a killed worker's job is taken over once it runs out), how often idle workers
    # look for work, and how many times a job is tried.
    job_lease_s: float = Field(default=30.0, ge=1, le=3_600)
    job_poll_s: float = Field(default=1.0, gt=0, le=60)
    job_max_attempts: int = Field(default=3, ge=1, le=20)
    # Webhooks (SPEC section 10): the retry schedule (first retry after the base, doubling
    # with jitter up to the cap, for the window), each attempt's timeout, how many
    # deliveries one process makes at once, and whether private targets are allowed.
    webhook_retry_base_s: float = Field(default=5.0, gt=0, le=86_400)
    webhook_retry_max_s: float = Field(default=3_600.0, gt=0, le=86_400)
    webhook_retry_window_s: float = Field(default=86_400.0, gt=0, le=30 * 86_400)
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=60)
    webhook_concurrency: int = Field(default=16, ge=1, le=256)
    webhook_allow_private: bool = False
    # SIGTERM: stop accepting connections, let in-flight requests and streams finish for up
    # to this many seconds, then cancel what is left (a cancelled send stores nothing).
    shutdown_grace_s: float = Field(default=20.0, ge=0, le=600)
    # GET /metrics (Prometheus): off (404) unless set; then this bearer token is required.
    metrics_token: SecretStr | None = None
    # Retention: conversations without activity for this many days are deleted with their
    # messages and audio (unset: kept for ever); how often each process runs the clean-up
    # (`avatarium gc`; 0: only when run by hand).
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    gc_interval_s: float = Field(default=3_600.0, ge=0)
    # Set by `avatarium serve --workers N` for its workers: a degraded limiter divides by it.
    workers: int = Field(default=1, ge=1)

    @field_validator("audio_store")
    @classmethod
    def _audio_store_url(cls, value: str) -> str:
        value = value.strip()
        if value and not value.startswith("s3://"):
            raise ValueError("must be empty (the data directory) or s3://bucket/prefix")
        if value == "s3://" or value.startswith("s3:///"):
            raise ValueError("names no bucket (s3://bucket/prefix)")
        return value

    def cors_origin_list(self) -> list[str]:
        """The configured CORS origins, without blanks or trailing slashes."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    def resolved_database_url(self) -> str:
        """The configured database URL, or SQLite inside the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'avatarium.db').resolve()}"
