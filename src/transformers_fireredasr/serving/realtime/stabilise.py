"""Which part of a growing hypothesis has stabilised: LocalAgreement-n, after whisper_streaming's LocalAgreement-2.

The current utterance is re-decoded as its audio grows; the text the last n hypotheses share from the start is taken
as stable. A decode of audio cut off mid-word can repeat or drop a character, and two such decodes can agree on it;
asking three to agree filters most of those out, at the cost of one more re-decode before the first caption. A shared prefix that ends inside a word of Latin script is cut back to the word's start, so a
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
    """The stable text of one utterance: `update(hypothesis)` returns the new text to send (possibly ""). `n`
    consecutive hypotheses must agree (LocalAgreement-n; whisper_streaming's is 2)."""

    def __init__(self, n: int = 2) -> None:
        if n < 2:
            raise ValueError(f"an agreement needs at least 2 hypotheses, got {n}")
        self.n = n
        self.recent: list[str] = []
        self.sent = ""

    def update(self, hypothesis: str) -> str:
        self.recent = [*self.recent, hypothesis][-self.n :]
        if len(self.recent) < self.n:
            return ""
        stable = self.recent[0]
        for other in self.recent[1:]:
            stable = agreed_prefix(stable, other)
        return self._extend(stable)

    def finish(self, transcript: str) -> str:
        """The rest of the final transcript, when what was sent is a prefix of it ("" otherwise)."""
        return self._extend(transcript)

    def _extend(self, stable: str) -> str:
        if len(stable) <= len(self.sent) or not stable.startswith(self.sent):
            return ""
        delta, self.sent = stable[len(self.sent) :], stable
        return delta


__all__ = ["LocalAgreement", "agreed_prefix"]
