"""Settings of the processing worker (`python -m transaction_service.processing`)."""

from __future__ import annotations

from pydantic import Field, HttpUrl, SecretStr, model_validator

from payments_common.config import CommonSettings
from transaction_service.connectors.signatures import DEFAULT_REPLAY_WINDOW_SECONDS


class ProcessingSettings(CommonSettings):
    """The processor to talk to, the webhook endpoint, and the submitter's and reconciler's pace."""

    payment_processor: str = Field(default="sandbox", pattern=r"^sandbox$")  # one module per processor
    processor_url: HttpUrl = HttpUrl("http://localhost:50060")
    processor_api_key: SecretStr
    processor_webhook_secret: SecretStr
    # one request's bound; above the sandbox's 2 s `pm_card_slow`
    processor_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_host: str = "0.0.0.0"  # processors call in from outside
    webhook_port: int = Field(default=50070, ge=0, le=65535)
    processing_metrics_port: int | None = Field(
        default=9103, ge=0, le=65535, description="unset: no /metrics"
    )
    webhook_replay_window_seconds: float = Field(default=DEFAULT_REPLAY_WINDOW_SECONDS, gt=0, le=3600)
    # the submitter: jobs per claim, submissions in flight, and how long a claim is held
    submit_batch: int = Field(default=32, ge=1, le=1000)
    # most of a job is waiting for the processor: it holds a pooled connection only for its statements
    submit_concurrency: int = Field(default=32, ge=1, le=512)
    submit_lease_seconds: float = Field(default=60.0, gt=0)
    submit_poll_seconds: float = Field(default=1.0, gt=0, le=60)  # besides the database's wake-ups
    # the reconciler: a PROCESSING payment is looked up after this long, then every as long again;
    # one the processor never received, or never answered for, is FAILED after the give-up time
    reconcile_after_seconds: float = Field(default=30.0, gt=0)
    reconcile_give_up_seconds: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _check_times(self) -> ProcessingSettings:
        if self.submit_lease_seconds <= self.processor_timeout_seconds:
            raise ValueError(
                "SUBMIT_LEASE_SECONDS: must exceed PROCESSOR_TIMEOUT_SECONDS, or a slow answer would let"
                " a second worker claim the job while the first still waits"
            )
        if self.reconcile_give_up_seconds < self.reconcile_after_seconds:
            raise ValueError("RECONCILE_GIVE_UP_SECONDS: must be at least RECONCILE_AFTER_SECONDS")
        return self
