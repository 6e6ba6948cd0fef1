"""The coach: streamed disposal guidance for a classified item, and the follow-up chat.

Two backends sit behind the same interfaces: the embedded composer, which builds sentences
from the knowledge base with no model at all, and an LLM over any OpenAI-compatible endpoint
that is only allowed to restate the rules we inject. The LLM path always falls back to the
composer, so a coaching stream ends with a result even when the upstream does not answer.
"""
