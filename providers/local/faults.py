"""Configurable latency and injected faults for the local provider, drawn deterministically."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from reelflow.providers.local.latency import LATENCY_VAR, Latency
from reelflow.schemas.errors import (
    ContentRejected,
    ContractError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from reelflow.schemas.requests import _Request

FAULTS_VAR = "REELFLOW_LOCAL_FAULTS"
SEED_VAR = "REELFLOW_LOCAL_FAULT_SEED"
BANNED_VAR = "REELFLOW_LOCAL_BANNED_WORDS"

TRANSIENT: dict[str, type[ProviderError]] = {
    "rate_limit": RateLimited,
    "server_error": ServerError,
    "timeout": ProviderTimeout,
}
# off_model: a keyframe drawn wrong; off_location: its characters right in the wrong place (with one character Gate 2
# scores it 0.5: between the default thresholds, so it goes to review); stuck_video: a first-last video stuck on its
# first frame (Clip QC bait)
FAULT_NAMES: tuple[str, ...] = (*TRANSIENT, "reject", "off_model", "off_location", "stuck_video")

_MESSAGES = {
    "rate_limit": "rate limited (429)",
    "server_error": "server error (500)",
    "timeout": "timed out",
    "reject": "content rejected by moderation",
}


def parse_faults(value: str | None) -> dict[str, float]:
    """Fault probabilities from `REELFLOW_LOCAL_FAULTS`, e.g. `rate_limit=0.3,reject=0.02`."""
    rates: dict[str, float] = {}
    if value is None:
        return rates
    for item in value.split(","):
        if not item.strip():
            continue
        name, sep, number = (part.strip() for part in item.partition("="))
        if name not in FAULT_NAMES:
            raise ContractError(f"{FAULTS_VAR}: unknown fault {name!r} (use {', '.join(FAULT_NAMES)})")
        if not sep or not number:
            raise ContractError(f"{FAULTS_VAR}: {name} needs a probability, e.g. {name}=0.1")
        if name in rates:
            raise ContractError(f"{FAULTS_VAR}: {name} is given twice")
        try:
            probability = float(number)
        except ValueError:
            raise ContractError(f"{FAULTS_VAR}: {name}={number} is not a number") from None
        if not 0.0 <= probability <= 1.0:
            raise ContractError(f"{FAULTS_VAR}: {name}={number} is not a probability (use 0 to 1)")
        rates[name] = probability
    return rates


def parse_seed(value: str | None) -> int:
    """The fault seed from `REELFLOW_LOCAL_FAULT_SEED` (unset or blank: 0)."""
    if value is None or not value.strip():
        return 0
    try:
        return int(value)
    except ValueError:
        raise ContractError(f"{SEED_VAR}: {value.strip()!r} is not an integer") from None


def parse_banned(value: str | None) -> tuple[str, ...]:
    """Lower-case words from `REELFLOW_LOCAL_BANNED_WORDS` (comma-separated) that moderation rejects."""
    if value is None:
        return ()
    return tuple(word.strip().lower() for word in value.split(",") if word.strip())


def _uniform(*parts: object) -> float:
    """A number in [0, 1) that depends only on `parts`."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class FaultSchedule:
    """Sleeps a fixed latency before each call, then may raise an injected provider error.

    Each fault is drawn independently with its own probability. `reject`, `off_model` and `stuck_video` depend only on
    (seed, key), so the same content is always rejected or drawn wrong; transient faults also depend on how many
    calls this process has made for that key, so a retry of the same request can succeed.
    """

    def __init__(
        self,
        *,
        latency: float | Latency = 0.0,
        rates: Mapping[str, float] | None = None,
        seed: int = 0,
        banned: tuple[str, ...] = (),
    ) -> None:
        self.timing = latency if isinstance(latency, Latency) else Latency(fixed=latency)
        self.banned = banned
        self.rates = dict(rates or {})
        self.seed = seed
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FaultSchedule:
        """The plan the `REELFLOW_LOCAL_*` variables describe (`os.environ` by default)."""
        env = os.environ if environ is None else environ
        return cls(
            latency=Latency.parse(env.get(LATENCY_VAR)),
            rates=parse_faults(env.get(FAULTS_VAR)),
            seed=parse_seed(env.get(SEED_VAR)),
            banned=parse_banned(env.get(BANNED_VAR)),
        )

    @property
    def latency(self) -> float:
        """The fixed seconds every call waits (0 with a profile of service times)."""
        return self.timing.fixed

    @contextmanager
    def serving(self, key: str, text: str = "", *, request: _Request | None = None) -> Iterator[None]:
        """A call: its fault after the whole latency, or its work inside the latency (the rest is waited after), as a
        service's own compute is part of its response time: drawing at the local provider adds nothing to a call."""
        started, wait = time.monotonic(), self._wait(request)
        fault = self._fault(key, text)
        if fault is not None:
            self._sleep(wait)
            raise fault
        yield
        self._sleep(wait - (time.monotonic() - started))

    def _wait(self, request: _Request | None) -> float:
        return self.timing.fixed if request is None else self.timing.seconds(request)

    @staticmethod
    def _sleep(seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def _fault(self, key: str, text: str) -> ProviderError | None:
        """The fault drawn for this call of `key` (its attempt counted), or None."""
        with self._lock:
            attempt = self._attempts.get(key, 0)
            self._attempts[key] = attempt + 1
        request_id = f"local-{key[:16]}"
        words = set(text.lower().replace(",", " ").replace(".", " ").split())
        banned = next((word for word in self.banned if word in words), None)
        if banned is not None:
            return ContentRejected(f"local: content rejected by moderation: {banned!r}", provider="local",
                                   request_id=request_id)
        if _uniform(self.seed, key, "reject") < self.rates.get("reject", 0.0):
            return ContentRejected(f"local: {_MESSAGES['reject']}", provider="local", request_id=request_id)
        for name, error in TRANSIENT.items():
            if _uniform(self.seed, key, attempt, name) < self.rates.get(name, 0.0):
                return error(f"local: {_MESSAGES[name]} (attempt {attempt + 1})", provider="local", request_id=request_id)
        return None

    def off_model(self, key: str) -> bool:
        """Whether the keyframe of this request is drawn without its characters, somewhere else (Gate 2 bait)."""
        return _uniform(self.seed, key, "off_model") < self.rates.get("off_model", 0.0)

    def off_location(self, key: str) -> bool:
        """Whether the keyframe of this request is drawn with its characters but somewhere else (Gate 2 review bait)."""
        return _uniform(self.seed, key, "off_location") < self.rates.get("off_location", 0.0)

    def stuck_video(self, key: str) -> bool:
        """Whether the first-last video of this request comes out stuck on its first frame."""
        return _uniform(self.seed, key, "stuck_video") < self.rates.get("stuck_video", 0.0)
