"""Which part of a growing hypothesis has stabilised: LocalAgreement-2, as in whisper_streaming.

The current utterance is re-decoded as its audio grows; the text two consecutive hypotheses share from the start
is taken as stable. A shared prefix that ends inside a word of Latin script is cut back to the word's start, so a
caption never shows half an English word. What has been sent is never taken back: a later pair of hypotheses that
disagrees with it sends nothing until they agree beyond it again, or until the utterance is completed.
"""

from __future__ import annotations

import os


def _is_word_char(char: str) -> bool:
    return char.isascii() and char.isalnum()


def agreed_prefix(previous: str, current: str) -> str:
    """The longest common prefix of two hypotheses, cut back to a word boundary in Latin script."""
    prefix = os.path.commonprefix([previous, current])
    if not prefix:
        return ""
    continues = [text[len(prefix)] for text in (previous, current) if len(text) > len(prefix)]
    if _is_word_char(prefix[-1]) and any(_is_word_char(char) for char in continues):
        cut = len(prefix)
        while cut and _is_word_char(prefix[cut - 1]):
            cut -= 1
        prefix = prefix[:cut]
    return prefix


class LocalAgreement:
    """The stable text of one utterance: `update(hypothesis)` returns the new text to send (possibly "")."""

    def __init__(self) -> None:
        self.previous: str | None = None
        self.sent = ""

    def update(self, hypothesis: str) -> str:
        previous, self.previous = self.previous, hypothesis
        if previous is None:
            return ""
        return self._extend(agreed_prefix(previous, hypothesis))

    def finish(self, transcript: str) -> str:
        """The rest of the final transcript, when what was sent is a prefix of it ("" otherwise)."""
        return self._extend(transcript)

    def _extend(self, stable: str) -> str:
        if len(stable) <= len(self.sent) or not stable.startswith(self.sent):
            return ""
        delta, self.sent = stable[len(self.sent) :], stable
        return delta


__all__ = ["LocalAgreement", "agreed_prefix"]
