# Copyright 2025 The transformers-fireredasr authors. Licensed under the Apache License, Version 2.0.
"""Tokenizer for FireRedASR-AED: one token per Chinese character, sentencepiece pieces for everything else."""

import os
import re
import shutil
from typing import Any

import sentencepiece
from transformers.tokenization_python import PreTrainedTokenizer
from transformers.utils import logging

logger = logging.get_logger(__name__)

VOCAB_FILES_NAMES = {"vocab_file": "dict.txt", "spm_file": "train_bpe1000.model"}

SPIECE_UNDERLINE = "▁"
# `dict.txt` spells the space character as `<space>`; it is used when there is no sentencepiece model.
SPACE_TOKEN = "<space>"
# One token per character in these CJK blocks (Extension A and the Unified Ideographs), as in the original.
CJK_CHAR = re.compile(r"([\u3400-\u4dbf\u4e00-\u9fff])")
# Punctuation the original training targets had replaced by spaces.
PUNCTUATION = re.compile(r"[，。？！,.?!]")


def load_vocab(vocab_file: str | os.PathLike) -> dict[str, int]:
    """Reads a FireRedASR `dict.txt` (`token id` per line, ids 0..N-1 in order) into a token -> id mapping."""
    vocab = {}
    with open(vocab_file, encoding="utf-8") as f:
        for line_no, line in enumerate(f):
            fields = line.split()
            # The original reads a blank line as the space token and a line without an id as id = line number.
            token = fields[0] if fields else SPACE_TOKEN
            index = int(fields[1]) if len(fields) >= 2 else line_no
            if index != len(vocab):
                raise ValueError(f"{vocab_file}:{line_no + 1}: expected id {len(vocab)} for {token!r}, got {index}.")
            if token in vocab:
                raise ValueError(f"{vocab_file}:{line_no + 1}: duplicate token {token!r}.")
            vocab[token] = index
    return vocab


class EosTerminatedTargets:
    """How the AED's and FireRedLID's tokenizers add special tokens: training targets end with `<eos>` (`<sos>` is
    prepended by the model as its decoder start)."""

    def build_inputs_with_special_tokens(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None
    ) -> list[int]:
        """Appends `eos_token_id`: `tokens + <eos>` are the training labels."""
        return token_ids_0 + (token_ids_1 or []) + [self.eos_token_id]

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        return [0] * (len(token_ids_0) + len(token_ids_1 or [])) + [1]


class DictVocabulary:
    """The vocabulary of a tokenizer whose `encoder` maps the tokens of its `dict.txt` to their ids (the AED's and
    FireRedLID's), with the tokens added since."""

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(self.encoder)
        vocab.update(self.added_tokens_encoder)
        return vocab


def write_dict_txt(encoder: dict[str, int], path: str) -> str:
    """Writes a vocabulary as the original `dict.txt` (`token id` lines, in id order); returns `path`."""
    with open(path, "w", encoding="utf-8") as file:
        for token, index in sorted(encoder.items(), key=lambda item: item[1]):
            file.write(f"{token} {index}\n")
    return path


class FireRedAsrTokenizer(DictVocabulary, EosTerminatedTargets, PreTrainedTokenizer):
    """
    Constructs a FireRedASR-AED tokenizer (a slow, pure-python tokenizer).

    Text is upper-cased, the punctuation `，。？！,.?!` is optionally replaced by spaces, every Chinese character
    becomes one token and every other stretch of text is split into pieces by a sentencepiece model (`▁` marks the
    start of a word); tokens missing from the vocabulary map to `unk_token`. Decoding joins the tokens, turns `▁` and
    `<space>` into spaces and strips the result, like the original `detokenize`.

    Encoding appends `eos_token` (training labels are `tokens + <eos>`; the model prepends `bos_token`, the `<sos>`
    decoder start token, itself when it shifts labels right).

    Args:
        vocab_file (`str`):
            The `dict.txt` vocabulary: one `token id` line per token, ids 0..N-1 in order (`<space>` is a space).
        spm_file (`str`, *optional*):
            The sentencepiece model (`train_bpe1000.model`) used for non-Chinese text. Without it, non-Chinese text is
            split into characters and spaces become `<space>`.
        unk_token (`str`, *optional*, defaults to `"<unk>"`):
            Token for anything missing from the vocabulary.
        bos_token (`str`, *optional*, defaults to `"<sos>"`):
            Start-of-sequence token, the decoder start token.
        eos_token (`str`, *optional*, defaults to `"<eos>"`):
            End-of-sequence token, appended when encoding.
        pad_token (`str`, *optional*, defaults to `"<pad>"`):
            Padding token.
        blank_token (`str`, *optional*, defaults to `"<blank>"`):
            The CTC blank token of the original vocabulary (never produced by the attention decoder).
        replace_punctuation (`bool`, *optional*, defaults to `True`):
            Replace `，。？！,.?!` by spaces before tokenizing, as the original did to build training targets.
        lowercase_output (`bool`, *optional*, defaults to `False`):
            Lowercase decoded text, as FireRedASR2 prints English (v1 prints it uppercase, as it was trained).
        hidden_tokens (`list[str]`, *optional*):
            Tokens decoding leaves out (FireRedASR2: `<blank>`, `<sil>`).
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str,
        spm_file: str | None = None,
        unk_token: str = "<unk>",
        bos_token: str = "<sos>",
        eos_token: str = "<eos>",
        pad_token: str = "<pad>",
        blank_token: str = "<blank>",
        replace_punctuation: bool = True,
        lowercase_output: bool = False,
        hidden_tokens: list[str] | None = None,
        **kwargs,
    ):
        self.vocab_file = vocab_file
        self.encoder = load_vocab(vocab_file)
        self.decoder = {index: token for token, index in self.encoder.items()}
        if str(unk_token) not in self.encoder:
            raise ValueError(f"The unknown token {str(unk_token)!r} is not in {vocab_file}.")
        self.spm_file = spm_file
        self.sp_model = None
        if spm_file is not None:
            self.sp_model = sentencepiece.SentencePieceProcessor()
            self.sp_model.Load(str(spm_file))
        elif SPACE_TOKEN not in self.encoder:
            logger.warning(f"No sentencepiece model and no {SPACE_TOKEN} in {vocab_file}: spaces will become unk.")
        self.replace_punctuation = replace_punctuation
        self.lowercase_output = lowercase_output
        self.hidden_tokens = list(hidden_tokens or [])
        super().__init__(
            unk_token=unk_token,
            bos_token=bos_token,
            eos_token=eos_token,
            pad_token=pad_token,
            blank_token=blank_token,
            replace_punctuation=replace_punctuation,
            lowercase_output=lowercase_output,
            hidden_tokens=self.hidden_tokens,
            **kwargs,
        )

    def _tokenize(self, text: str, **kwargs) -> list[str]:
        """Splits text like the original `ChineseCharEnglishSpmTokenizer.tokenize` (added tokens are split off before)."""
        text = text.upper()
        if self.replace_punctuation:
            text = PUNCTUATION.sub(" ", text)
        tokens = []
        for part in CJK_CHAR.split(text.strip()):
            part = part.strip()
            if not part:
                continue
            if CJK_CHAR.fullmatch(part):
                tokens.append(part)
            elif self.sp_model is not None:
                tokens.extend(self.sp_model.encode(part, out_type=str))
            else:
                tokens.extend(SPACE_TOKEN if char == " " else char for char in part)
        return tokens

    def _convert_token_to_id(self, token: str) -> int:
        return self.encoder.get(token, self.encoder[str(self.unk_token)])

    def _convert_id_to_token(self, index: int) -> str:
        return self.decoder.get(index, str(self.unk_token))

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Joins tokens without separator, turns `▁`/`<space>` into spaces and strips (the original `detokenize`);
        `hidden_tokens` are left out and, with `lowercase_output`, the text is lowercased (FireRedASR2)."""
        hidden = self.hidden_tokens
        text = "".join(" " if token == SPACE_TOKEN else token for token in tokens if token not in hidden)
        text = text.replace(SPIECE_UNDERLINE, " ").strip()
        return text.lower() if self.lowercase_output else text

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Writes `dict.txt` (and the sentencepiece model, when there is one) to `save_directory`."""
        if not os.path.isdir(save_directory):
            raise ValueError(f"Vocabulary path ({save_directory}) should be a directory.")
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        vocab_path = write_dict_txt(
            self.encoder, os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["vocab_file"])
        )
        if self.sp_model is None:
            return (vocab_path,)
        spm_path = os.path.join(save_directory, prefix + VOCAB_FILES_NAMES["spm_file"])
        if self.spm_file is not None and os.path.isfile(self.spm_file):
            if os.path.abspath(self.spm_file) != os.path.abspath(spm_path):
                shutil.copyfile(self.spm_file, spm_path)
        else:
            with open(spm_path, "wb") as f:
                f.write(self.sp_model.serialized_model_proto())
        return (vocab_path, spm_path)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.sp_model is not None:
            state["sp_model"] = self.sp_model.serialized_model_proto()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__ = state
        if isinstance(self.sp_model, bytes):
            self.sp_model = sentencepiece.SentencePieceProcessor(model_proto=self.sp_model)


__all__ = ["FireRedAsrTokenizer"]
