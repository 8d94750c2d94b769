"""Tokenizer for FireRedLID: one token per language or dialect label of its `dict.txt`, labels joined by spaces."""

from __future__ import annotations

import os

from transformers.tokenization_python import PreTrainedTokenizer

from .tokenization_fireredasr import DictVocabulary, EosTerminatedTargets, load_vocab, write_dict_txt

VOCAB_FILES_NAMES = {"vocab_file": "dict.txt"}


class FireRedLidTokenizer(DictVocabulary, EosTerminatedTargets, PreTrainedTokenizer):
    """
    Constructs a FireRedLID tokenizer (a slow, pure-python tokenizer) over the labels of its `dict.txt`.

    Text is split at whitespace, one label per word (`"zh mandarin"` -> `["zh", "mandarin"]`); decoding joins the
    labels with one space, as upstream prints them. Encoding appends `eos_token` (training labels are
    `labels + <eos>`; the model prepends the `<sos>` start token itself).

    Args:
        vocab_file (`str`):
            The `dict.txt` label list: one `label id` line per label, ids 0..N-1 in order.
        unk_token (`str`, *optional*, defaults to `"<unk>"`):
            Label for anything missing from the labels (id 1 in the release).
        bos_token (`str`, *optional*, defaults to `"<sos>"`):
            The decoder start label (id 3).
        eos_token (`str`, *optional*, defaults to `"<eos>"`):
            The end label (id 4).
        pad_token (`str`, *optional*, defaults to `"<pad>"`):
            The padding label (id 2).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        unk_token: str = "<unk>",
        bos_token: str = "<sos>",
        eos_token: str = "<eos>",
        pad_token: str = "<pad>",
        **kwargs,
    ):
        self.vocab_file = vocab_file
        self.encoder = load_vocab(vocab_file)
        self.decoder = {index: token for token, index in self.encoder.items()}
        for name, token in (("unk", unk_token), ("bos", bos_token), ("eos", eos_token), ("pad", pad_token)):
            if str(token) not in self.encoder:
                raise ValueError(f"The {name} token {str(token)!r} is not in {vocab_file}.")
        super().__init__(unk_token=unk_token, bos_token=bos_token, eos_token=eos_token, pad_token=pad_token, **kwargs)

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return text.split()

    def _convert_token_to_id(self, token: str) -> int:
        return self.encoder.get(token, self.encoder[str(self.unk_token)])

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(index, str(self.unk_token))

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Labels joined by one space, as upstream's `detokenize`."""
        return " ".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Writes `dict.txt` to `save_directory`."""
        if not os.path.isdir(save_directory):
            raise ValueError(f"Vocabulary path ({save_directory}) should be a directory.")
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        return (write_dict_txt(self.encoder, os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["vocab_file"])),)


__all__ = ["FireRedLidTokenizer"]
