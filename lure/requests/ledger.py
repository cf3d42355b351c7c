"""What a run of requests cost: counts, tokens and an estimated price, kept apart for this run and for the cache.

Token usage is what the backend reported for each answer. With the ``openai`` backend a retried request is one
answer and one usage (the successful attempt's): a failed attempt (timeout, 429, 5xx, cut connection) returns no
usage, so tokens a server may have spent on an attempt the client gave up on are not counted; ``attempts``
counts every attempt, so ``attempts - sent`` is the number of client retries. An error carries no usage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lure.requests.models import Response, Usage


@dataclass(frozen=True)
class Prices:
    """Price per million prompt and completion tokens (any currency; 0: not estimated)."""

    prompt_per_million: float = 0.0
    completion_per_million: float = 0.0

    def cost(self, usage: Usage | None) -> float:
        if usage is None:
            return 0.0
        return (
            usage.prompt_tokens * self.prompt_per_million + usage.completion_tokens * self.completion_per_million
        ) / 1e6


@dataclass
class Ledger:
    """Counts of one run.

    ``requests`` given to the runner = ``cache_hits`` + ``duplicates`` + ``sent``; ``sent`` = ``ok`` + ``failed``
    (distinct requests that went to the backend). ``duplicates`` are requests identical to an earlier one of the
    same run (same cache key), answered by that one's answer. Tokens and ``cost`` are this run's spending;
    ``cached_*`` is what the answers taken from the cache cost when they were obtained. ``without_usage`` counts
    answers whose backend reported no usage (they add no tokens).
    """

    prices: Prices = field(default_factory=Prices)
    requests: int = 0
    cache_hits: int = 0
    duplicates: int = 0
    sent: int = 0
    attempts: int = 0
    ok: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    cached_cost: float = 0.0
    without_usage: int = 0
    wall_s: float = 0.0

    def add_cached(self, response: Response) -> None:
        self.cache_hits += 1
        if response.usage is not None:
            self.cached_prompt_tokens += response.usage.prompt_tokens
            self.cached_completion_tokens += response.usage.completion_tokens
            self.cached_cost += self.prices.cost(response.usage)

    def add_sent(self, response: Response) -> None:
        self.sent += 1
        self.attempts += response.attempts
        if response.status == "error":
            self.failed += 1
            return
        self.ok += 1
        if response.usage is None:
            self.without_usage += 1
            return
        self.prompt_tokens += response.usage.prompt_tokens
        self.completion_tokens += response.usage.completion_tokens
        self.cost += self.prices.cost(response.usage)

    @property
    def retries(self) -> int:
        """Transport attempts beyond the first, summed over the requests sent."""
        return self.attempts - self.sent

    def as_dict(self) -> dict[str, float | int]:
        """Flat numbers for a metrics file (prices included, so a cost can be checked)."""
        out: dict[str, float | int] = {k: v for k, v in asdict(self).items() if k != "prices"}
        out["retries"] = self.retries
        out["price_prompt_per_million"] = self.prices.prompt_per_million
        out["price_completion_per_million"] = self.prices.completion_per_million
        return out
