"""Images sent to a backend that takes text only: said once, never dropped in silence.

Prompt servers get one prompt string and hand-written KTransformers wrappers
take `content: str`, so an image in the chat cannot reach the model. The text
parts still go; the user is told in one status line that the image did not.
"""

from __future__ import annotations

TEXT_ONLY_NOTICE = "This backend takes text only; the image was not sent."
_IMAGE_PARTS = ("image_url", "image", "input_image")


def carries_images(messages: list[dict]) -> bool:
    """Whether any message holds an image part (OpenAI's `image_url`, or the Responses-style names)."""
    for message in messages:
        content = message.get("content")
        if isinstance(content, list) and any(isinstance(p, dict) and p.get("type") in _IMAGE_PARTS for p in content):
            return True
    return False
