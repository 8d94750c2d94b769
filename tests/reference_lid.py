"""Builds original-format FireRedLID folders with the reference package, and runs it as the oracle.

Upstream's FireRedLID (FireRedASR2S `fireredlid/`) is the AED architecture: `FireRedLidAed` holds a Conformer
`encoder` and a Transformer `lid_decoder` over language labels, loads `model.pth.tar` with `strict=False`, and decodes
with the AED's beam search (beam 3, nbest 1, at most 2 labels, softmax smoothing 1.25, length penalty 0.6, eos
penalty 1), which also tracks each chosen label's probability: the confidence is the mean of those over the
hypothesis' labels (`<eos>` not counted), the text the labels joined by spaces.

The oracle is `fireredasr==0.0.2`'s `FireRedAsrAed` built with `odim` = the label count and the decoder's layer
count, its `decoder` loaded from `lid_decoder.*`. Its beam search is the same procedure without the probability
tracking, so the oracle's confidence is recomputed for the hypothesis it returns: its labels teacher-forced through
the same decoder over the same (batched, padded) encoder output, each step's smoothed softmax read at the chosen
label, which are the numbers upstream's search records along that hypothesis' path.

The encoder can be taken from an AED folder (the trained test AED), so a converted ASR model and this LID share
their encoder weights and their CMVN, as the shared-encoder docs and benchmark assume.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import torch

# Language codes as upstream's fireredlid/README.md lists them, then its Chinese dialect labels; the release's
# `dict.txt` has 120 entries with the specials (the remaining ones are filled with placeholders here).
LANGUAGES = (
    "zh en es fr ja ko ru de pt ab af am ar as az ba be bg bn br bs ca ceb cs cy da el eo et eu fa fi fo gl gn gu gv "
    "ha haw hi hr ht hu hy ia id is it iw jw ka kk km kn la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc "
    "pa pl ps ro sa sco sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi war yi yo bo"
).split()
DIALECTS = ["mandarin", "yue", "wu", "min", "north", "xinan", "xiang"]
SPECIALS = ["<blank>", "<unk>", "<pad>", "<sos>", "<eos>"]
LABEL_COUNT = 120
DECODER_LAYERS = 6
# Upstream's settings (FireRedLid.__init__): beam 3, nbest 1, 2 labels, smoothing 1.25, length penalty 0.6, eos 1.
DECODING = dict(beam_size=3, nbest=1, decode_max_len=2, softmax_smoothing=1.25, length_penalty=0.6, eos_penalty=1.0)


def labels() -> list[str]:
    names = SPECIALS + LANGUAGES + DIALECTS
    return names + [f"lang{i}" for i in range(LABEL_COUNT - len(names))]


def _reference_aed_class():
    import fireredasr.models.fireredasr_aed as fireredasr_aed  # not `fireredasr.models.fireredasr` (modelscope)

    return fireredasr_aed.FireRedAsrAed


def _oracle_args(args: argparse.Namespace) -> argparse.Namespace:
    """The reference AED's args for a LID package: its decoder over the labels, with the LID's layer count."""
    return argparse.Namespace(**{**vars(args), "odim": args.lid_odim})


def spoken_labels(path: Path) -> str:
    """The labels the test decoder is taught for a corpus file (`{sentence}_{speed}.wav`, `noise_{seed}.wav`): one
    pair per sentence, so that different audio gets different labels."""
    if path.name.startswith("noise"):
        return "de"
    sentence = int(path.name.split("_")[0])
    return ["zh mandarin", "zh yue", "en", "ja", "zh wu", "fr", "ko", "zh min"][sentence % 8]


def _train_decoder(model, args, paths: list[Path], cmvn: Path, steps: int) -> None:
    """Teacher-forced steps on the label decoder alone (the encoder stays as given), so that it follows the audio."""
    import fireredasr.data.asr_feat as asr_feat

    index = {label: i for i, label in enumerate(labels())}
    feats, lengths, _ = asr_feat.ASRFeatExtractor(str(cmvn))([str(p) for p in paths])
    with torch.no_grad():
        enc, _, enc_mask = model.encoder(feats, lengths)
    targets = [[index[label] for label in spoken_labels(p).split()] + [args.eos_id] for p in paths]
    width = max(len(t) for t in targets)
    labels_ = torch.full((len(targets), width), -100)
    for row, target in enumerate(targets):
        labels_[row, : len(target)] = torch.tensor(target)
    inputs = torch.where(labels_ == -100, args.pad_id, labels_)
    inputs = torch.cat([torch.full((len(targets), 1), args.sos_id), inputs[:, :-1]], dim=1)
    decoder = model.decoder
    optimizer = torch.optim.Adam(decoder.parameters(), lr=2e-3)
    decoder.train()
    for _ in range(steps):
        mask = decoder.ignored_target_position_is_0(inputs, decoder.pad_id)
        hidden = decoder.tgt_word_emb(inputs) * decoder.scale + decoder.positional_encoding(inputs)
        for layer in decoder.layer_stack:
            hidden = layer(hidden, enc, mask, enc_mask)
        logits = decoder.tgt_word_prj(decoder.layer_norm_out(hidden))
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels_, ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoder.eval()


def build_reference_lid(
    folder: Path, encoder_dir: Path, paths: list[Path], seed: int = 0, train_steps: int = 80, scale: float = 1.0
) -> Path:
    """Writes an original-format FireRedLID folder (`model.pth.tar`, `dict.txt`, `cmvn.ark`) into `folder`.

    The encoder weights and `cmvn.ark` are `encoder_dir`'s (an original AED folder); the label decoder (6 layers,
    120 labels) starts random, with label embeddings of std `scale / sqrt(d_model)` (the `<pad>` row zero, as
    `nn.Embedding` leaves it) and jittered LayerNorms, and is trained a little on `paths` (`spoken_labels`), so that
    its labels depend on the audio while its beams still disagree.
    """
    folder.mkdir(parents=True, exist_ok=True)
    package = torch.load(encoder_dir / "model.pth.tar", map_location="cpu", weights_only=False)
    args = argparse.Namespace(**vars(package["args"]))
    args.lid_odim, args.n_layers_dec = LABEL_COUNT, DECODER_LAYERS
    torch.manual_seed(seed)
    model = _reference_aed_class().from_args(_oracle_args(args))
    encoder = {k[len("encoder.") :]: v for k, v in package["model_state_dict"].items() if k.startswith("encoder.")}
    model.encoder.load_state_dict(encoder)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        embedding = model.decoder.tgt_word_emb.weight
        embedding.copy_(torch.randn(embedding.shape, generator=generator) * scale * args.d_model**-0.5)
        embedding[args.pad_id] = 0.0
        for name, parameter in model.decoder.named_parameters():
            if "norm" in name:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    if train_steps:
        _train_decoder(model, args, paths, encoder_dir / "cmvn.ark", train_steps)
    state = {
        ("lid_" + key if key.startswith("decoder.") else key): tensor for key, tensor in model.state_dict().items()
    }
    torch.save({"args": args, "model_state_dict": state}, folder / "model.pth.tar")
    shutil.copy(encoder_dir / "cmvn.ark", folder / "cmvn.ark")
    (folder / "dict.txt").write_text("".join(f"{label} {i}\n" for i, label in enumerate(labels())), encoding="utf8")
    return folder


class ReferenceLid:
    """Upstream's FireRedLID path on the reference package: wav files -> fbank + CMVN -> encoder -> beam search ->
    labels joined by spaces, with upstream's confidence (see the module docstring)."""

    def __init__(self, folder: Path):
        import fireredasr.data.asr_feat as asr_feat
        from fireredasr.data.token_dict import TokenDict

        package = torch.load(folder / "model.pth.tar", map_location="cpu", weights_only=False)
        self.args = _oracle_args(package["args"])
        self.model = _reference_aed_class().from_args(self.args)
        state = {
            (key[len("lid_") :] if key.startswith("lid_decoder.") else key): tensor
            for key, tensor in package["model_state_dict"].items()
        }
        self.model.load_state_dict(state)
        self.model.eval()
        self.extractor = asr_feat.ASRFeatExtractor(str(folder / "cmvn.ark"))
        self.dict = TokenDict(str(folder / "dict.txt"), unk="<unk>")

    @torch.no_grad()
    def identify(self, paths: list[Path]) -> list[tuple[list[int], str, float]]:
        """`(label ids, text, confidence)` per file, all files in one padded batch, as upstream's `process`."""
        feats, lengths, _ = self.extractor([str(p) for p in paths])
        enc, _, enc_mask = self.model.encoder(feats, lengths)
        hyps = self.model.decoder.batch_beam_search(enc, enc_mask, **DECODING)
        results = []
        for row, hyp in enumerate(hyps):
            ids = [int(i) for i in hyp[0]["yseq"]]
            text = " ".join(self.dict[i] for i in ids)
            results.append((ids, text, self._confidence(enc[row : row + 1], enc_mask[row : row + 1], ids)))
        return results

    def _confidence(self, enc: torch.Tensor, enc_mask: torch.Tensor, ids: list[int]) -> float:
        """The mean smoothed probability of `ids` along their path (NaN for none, as upstream's empty mean)."""
        if not ids:
            return float("nan")
        decoder = self.model.decoder
        inputs = torch.tensor([[self.args.sos_id, *ids[:-1]]])
        mask = decoder.ignored_target_position_is_0(inputs, decoder.pad_id)
        hidden = decoder.tgt_word_emb(inputs) * decoder.scale + decoder.positional_encoding(inputs)
        for layer in decoder.layer_stack:
            hidden = layer(hidden, enc, mask, enc_mask)
        logits = decoder.tgt_word_prj(decoder.layer_norm_out(hidden))[0]
        probabilities = torch.softmax(logits / DECODING["softmax_smoothing"], dim=-1)
        return float(np.mean([probabilities[step, label].item() for step, label in enumerate(ids)]))
