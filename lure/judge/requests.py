"""The chat messages of a judge prompt, the same for both judging modes (generated JSON and logprob).

One user message holding the rendered prompt, nothing else: the prompt's own task block says what the judge does,
so there is no system message whose text could drift from the template (and whose absence lets a backend's chat
template add its default one, e.g. SmolLM2's "You are a helpful AI assistant named SmolLM"). Everything the model
reads is then in the template, hashed by the caller into ``ChatRequest.template_hash``.
"""

from __future__ import annotations

from lure.judge.prompt import JudgePrompt
from lure.requests.models import Message


def judge_messages(prompt: JudgePrompt) -> tuple[Message, ...]:
    """The messages of one judge request: a single user message with ``prompt.text``."""
    return (Message(role="user", content=prompt.text),)
