"""Session fixtures: synthetic Mandarin speech, and original-format FireRedASR-AED directories built with the
reference package (the oracle), including one trained briefly so that its transcripts depend on the audio.

A random AED decoder is degenerate (it repeats one token whatever the input), so identical outputs from two
implementations would prove little; the trained fixture emits different, non-empty transcripts per utterance.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.audio import noise, synthesize_mandarin, write_wav
from tests.markers import markers_for

TESTS = Path(__file__).resolve().parent


def pytest_addoption(parser):
    parser.addoption(
        "--slow",
        action="store_true",
        help="also run the tests marked slow (tests/markers.py), which plain pytest leaves out",
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by the markers given here
def pytest_collection_modifyitems(config, items):
    """Marks every test as tests/markers.py's rule says; then, when pytest runs its default test paths with no `-m`
    and no `--slow`, leaves the slow tests out (the fast default suite)."""
    for item in items:
        nodeid = (
            Path(item.path).resolve().relative_to(TESTS).as_posix() + item.nodeid[len(item.nodeid.split("::")[0]) :]
        )
        for name in markers_for(nodeid):
            item.add_marker(name)
    # The files that hold slow tests go first (in their order), so that pytest-xdist's workers (tests/run.sh) start
    # the long files early and end together on short ones, rather than one worker running a long file alone at the end.
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
    if (
        config.getoption("--slow")
        or config.option.markexpr
        or config.args_source != pytest.Config.ArgsSource.TESTPATHS
    ):
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        items[:] = [item for item in items if not item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)


def pytest_report_header(config):
    if not (config.getoption("--slow") or config.option.markexpr):
        return "slow tests (tests/markers.py) are left out of a plain run: --slow runs them too"
    return None


SENTENCES = [
    "今天天气很好",
    "我们一起去学校",
    "他在家里看书",
    "明天下午开会",
    "请把门关上",
    "这个问题很重要",
    "我喜欢吃苹果",
    "北京是中国的首都",
]
ENGLISH = ["HELLO WORLD", "GOOD MORNING", "OPEN THE DOOR", "THANK YOU VERY MUCH", "SPEECH RECOGNITION MODEL"]
SPECIALS = ["<blank>", "<unk>", "<pad>", "<sos>", "<eos>"]


def _reference_modules():
    """Imports the reference submodules directly (its top-level package imports modelscope)."""
    import fireredasr.data.asr_feat as asr_feat
    import fireredasr.models.fireredasr_aed as fireredasr_aed
    import fireredasr.tokenizer.aed_tokenizer as aed_tokenizer

    return asr_feat, fireredasr_aed, aed_tokenizer


@dataclass
class Utterance:
    text: str
    audio: np.ndarray
    path: Path


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> list[Utterance]:
    """Every sentence spoken at two speeds and pitches, plus two noise clips (text ""), as 16 kHz wav files."""
    folder = tmp_path_factory.mktemp("speech")
    utterances = []
    for index, text in enumerate(SENTENCES):
        for speed, pitch in ((150, 40), (185, 60)):
            path = folder / f"{index}_{speed}.wav"
            utterances.append(Utterance(text, synthesize_mandarin(text, path, speed=speed, pitch=pitch), path))
    for seed, seconds in ((0, 1.23), (1, 0.61)):
        path = folder / f"noise_{seed}.wav"
        audio = noise(seconds, seed)
        write_wav(path, audio)
        utterances.append(Utterance("", audio, path))
    return utterances


def _write_vocab(folder: Path) -> None:
    """`dict.txt` (specials, `<space>`, Hanzi, BPE pieces) and `train_bpe1000.model`, as the original ships them."""
    import sentencepiece as spm

    text_file = folder / "english.txt"
    text_file.write_text("\n".join(ENGLISH * 4) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text_file),
        model_prefix=str(folder / "train_bpe1000"),
        vocab_size=40,
        model_type="bpe",
        character_coverage=1.0,
        bos_id=-1,
        eos_id=-1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(folder / "train_bpe1000.model"))
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())]
    hanzi = sorted({char for sentence in SENTENCES for char in sentence})
    tokens = SPECIALS + ["<space>"] + hanzi + [piece for piece in pieces if piece not in ("<unk>",)]
    (folder / "dict.txt").write_text("".join(f"{token} {i}\n" for i, token in enumerate(tokens)), encoding="utf8")


def _write_cmvn(folder: Path, utterances: list[Utterance]) -> None:
    """Global CMVN stats of the corpus fbank in Kaldi's format (sums + count, sums of squares)."""
    import kaldiio

    asr_feat, _, _ = _reference_modules()
    fbank = asr_feat.KaldifeatFbank(num_mel_bins=80, frame_length=25, frame_shift=10, dither=0.0)
    frames = np.concatenate([fbank((16000, (u.audio * 32768).astype(np.float64))) for u in utterances])
    stats = np.zeros((2, 81))
    stats[0, :80] = frames.sum(0)
    stats[0, 80] = len(frames)
    stats[1, :80] = (frames**2).sum(0)
    kaldiio.save_mat(str(folder / "cmvn.ark"), stats)


def _reference_args(**sizes) -> argparse.Namespace:
    args = dict(
        idim=80, odim=0, d_model=64, n_head=4, n_layers_enc=2, n_layers_dec=2, d_inner=256, kernel_size=33,
        pe_maxlen=5000, residual_dropout=0.1, dropout_rate=0.1, sos_id=3, eos_id=4, pad_id=2, blank_id=0,
        input_length_max=60.0, output_length_max=250,
    )  # fmt: skip
    args.update(sizes)
    return argparse.Namespace(**args)


def _jitter_norms(model: torch.nn.Module, seed: int) -> None:
    """Moves LayerNorm weights and biases off 1/0 so that a swapped or misplaced norm changes the output."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))


def _train(model, utterances: list[Utterance], folder: Path, steps: int) -> None:
    """Teacher-forced training on the corpus, so that the decoder follows the audio."""
    asr_feat, _, aed_tokenizer = _reference_modules()
    extractor = asr_feat.ASRFeatExtractor(str(folder / "cmvn.ark"))
    tokenizer = aed_tokenizer.ChineseCharEnglishSpmTokenizer(
        str(folder / "dict.txt"), str(folder / "train_bpe1000.model")
    )
    feats, lengths, _ = extractor([str(u.path) for u in utterances])
    targets = [tokenizer.tokenize(u.text)[1] + [model.eos_id] for u in utterances]
    width = max(len(t) for t in targets)
    labels = torch.full((len(targets), width), -100)
    for row, target in enumerate(targets):
        labels[row, : len(target)] = torch.tensor(target)
    inputs = torch.where(labels == -100, model.decoder.pad_id, labels)
    inputs = torch.cat([torch.full((len(targets), 1), model.sos_id), inputs[:, :-1]], dim=1)

    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    for _ in range(steps):
        enc, _, enc_mask = model.encoder(feats, lengths)
        decoder = model.decoder
        tgt_mask = decoder.ignored_target_position_is_0(inputs, decoder.pad_id)
        hidden = decoder.tgt_word_emb(inputs) * decoder.scale + decoder.positional_encoding(inputs)
        for layer in decoder.layer_stack:
            hidden = layer(hidden, enc, tgt_mask, enc_mask)
        logits = decoder.tgt_word_prj(decoder.layer_norm_out(hidden))
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert math.isfinite(loss.item())


def build_reference_aed(folder: Path, utterances: list[Utterance], seed: int, train_steps: int, **sizes) -> Path:
    """Writes an original-format AED directory (model.pth.tar, cmvn.ark, dict.txt, train_bpe1000.model)."""
    _, fireredasr_aed, _ = _reference_modules()
    folder.mkdir(parents=True, exist_ok=True)
    _write_vocab(folder)
    _write_cmvn(folder, utterances)
    vocab_size = sum(1 for _ in open(folder / "dict.txt", encoding="utf8"))
    args = _reference_args(odim=vocab_size, **sizes)
    torch.manual_seed(seed)
    model = fireredasr_aed.FireRedAsrAed.from_args(args)
    with torch.no_grad():  # the reference leaves embeddings at N(0, 1), which makes a decoder echo its input
        model.decoder.tgt_word_emb.weight.normal_(0.0, args.d_model**-0.5)
    _jitter_norms(model, seed)
    if train_steps:
        _train(model, utterances, folder, train_steps)
    torch.save({"args": args, "model_state_dict": model.state_dict()}, folder / "model.pth.tar")
    return folder


def built_once(tmp_path_factory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder `name` that `build(folder)` fills: under pytest-xdist the worker processes share one build (the
    first to ask builds it while the others wait), so that the fixtures that train models cost the suite once."""
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # one per run, above each worker's own base
    folder = shared / name
    with FileLock(str(shared / f"{name}.lock")):
        if not (shared / f"{name}.built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a worker that died halfway leaves no half-built folder
            folder.mkdir()
            build(folder)
            (shared / f"{name}.built").touch()
    return folder


@pytest.fixture(scope="session")
def trained_aed_dir(tmp_path_factory, speech) -> Path:
    """A tiny AED (d_model 64, 2+2 layers) trained on the synthetic corpus: its transcripts follow the audio."""
    return built_once(
        tmp_path_factory, "aed_trained", lambda folder: build_reference_aed(folder, speech, seed=0, train_steps=250)
    )


@pytest.fixture(scope="session")
def odd_aed_dir(tmp_path_factory, speech) -> Path:
    """An AED of other, odd sizes (d_model 48, 3 heads, 3+1 layers, kernel 5), trained only a little: its beams
    disagree and its hypotheses are often wrong, which exercises more of the beam procedure."""
    return built_once(
        tmp_path_factory, "aed_odd", lambda folder: build_reference_aed(
            folder, speech, seed=1, train_steps=100,
            d_model=48, n_head=3, n_layers_enc=3, n_layers_dec=1, kernel_size=5,
        ),
    )  # fmt: skip


@pytest.fixture(scope="session")
def converted_aed_dir(tmp_path_factory, trained_aed_dir) -> Path:
    from transformers_fireredasr.conversion.aed import convert_aed

    return convert_aed(trained_aed_dir, tmp_path_factory.mktemp("aed_trained_hf"))


@pytest.fixture(scope="session")
def converted_odd_dir(tmp_path_factory, odd_aed_dir) -> Path:
    from transformers_fireredasr.conversion.aed import convert_aed

    return convert_aed(odd_aed_dir, tmp_path_factory.mktemp("aed_odd_hf"))


class ReferenceAed:
    """The reference package's full path: wav files -> ASRFeatExtractor -> FireRedAsrAed.transcribe -> detokenize."""

    def __init__(self, folder: Path):
        asr_feat, fireredasr_aed, aed_tokenizer = _reference_modules()
        package = torch.load(folder / "model.pth.tar", map_location="cpu", weights_only=False)
        self.model = fireredasr_aed.FireRedAsrAed.from_args(package["args"])
        self.model.load_state_dict(package["model_state_dict"])
        self.model.eval()
        self.extractor = asr_feat.ASRFeatExtractor(str(folder / "cmvn.ark"))
        self.tokenizer = aed_tokenizer.ChineseCharEnglishSpmTokenizer(
            str(folder / "dict.txt"), str(folder / "train_bpe1000.model")
        )

    def features(self, paths: list[Path]) -> tuple[torch.Tensor, torch.Tensor]:
        feats, lengths, _ = self.extractor([str(p) for p in paths])
        return feats, lengths

    @torch.no_grad()
    def transcribe(self, paths: list[Path], **decoding) -> list[tuple[list[int], str]]:
        """Token ids and text per file, decoding one file at a time."""
        results = []
        for path in paths:
            feats, lengths = self.features([path])
            hyp = self.model.transcribe(feats, lengths, **decoding)[0][0]["yseq"].tolist()
            results.append((hyp, self.tokenizer.detokenize(hyp)))
        return results


@pytest.fixture(scope="session")
def reference_aed(trained_aed_dir) -> ReferenceAed:
    return ReferenceAed(trained_aed_dir)


@pytest.fixture(scope="session")
def llm_dir(tmp_path_factory, trained_aed_dir) -> Path:
    """An original-format FireRedASR-LLM directory: trained tiny encoder, tiny random Qwen2, random LoRA."""
    from tests.reference_llm import build_reference_llm

    return build_reference_llm(tmp_path_factory.mktemp("llm"), trained_aed_dir)


@pytest.fixture(scope="session")
def converted_llm_dir(tmp_path_factory, llm_dir) -> Path:
    from transformers_fireredasr.conversion.llm import convert_llm

    return convert_llm(llm_dir, tmp_path_factory.mktemp("llm_hf"), max_shard_size=8 * 1024**2)


@pytest.fixture(scope="session")
def converted_llm_lora_dir(tmp_path_factory, llm_dir) -> Path:
    from transformers_fireredasr.conversion.llm import convert_llm

    return convert_llm(llm_dir, tmp_path_factory.mktemp("llm_lora_hf"), keep_lora=True)


@pytest.fixture(scope="session")
def reference_llm(llm_dir):
    from tests.reference_llm import ReferenceLlm

    return ReferenceLlm(llm_dir)


def add_ctc_head(source: Path, folder: Path, seed: int = 0) -> Path:
    """A FireRedASR2-AED-format directory: `source`'s files, its checkpoint plus a CTC head `ctc.ctc_lo`
    (`Linear(d_model, odim)`, bias, random) as FireRedASR2-AED adds on the final encoder output."""
    import shutil

    shutil.copytree(source, folder)
    package = torch.load(folder / "model.pth.tar", map_location="cpu", weights_only=False)
    args = package["args"]
    generator = torch.Generator().manual_seed(seed)
    package["model_state_dict"]["ctc.ctc_lo.weight"] = 0.3 * torch.randn(args.odim, args.d_model, generator=generator)
    package["model_state_dict"]["ctc.ctc_lo.bias"] = 0.1 * torch.randn(args.odim, generator=generator)
    torch.save(package, folder / "model.pth.tar")
    return folder


@pytest.fixture(scope="session")
def aed2_dir(tmp_path_factory, trained_aed_dir) -> Path:
    """The trained reference AED as a FireRedASR2-AED checkpoint (the same weights plus `ctc.ctc_lo`)."""
    return add_ctc_head(trained_aed_dir, tmp_path_factory.mktemp("aed2") / "FireRedASR2-AED")


@pytest.fixture(scope="session")
def converted_aed2_dir(tmp_path_factory, aed2_dir) -> Path:
    from transformers_fireredasr.conversion.aed import convert_aed

    return convert_aed(aed2_dir, tmp_path_factory.mktemp("aed2_hf"))


@pytest.fixture(scope="module")
def demo():
    """The bundled demo model (fp32, SDPA), its processor, and the features of its two held-out clips as one batch; the
    model's compiled decoding steps are dropped afterwards."""
    from transformers import AutoModelForSpeechSeq2Seq, AutoProcessor

    from tests.audio import HELD_OUT_CLIPS
    from transformers_fireredasr import demo_model_dir, forget_compiled_decoding
    from transformers_fireredasr.audio_io import load_waveform

    folder = str(demo_model_dir())
    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForSpeechSeq2Seq.from_pretrained(folder).eval()
    audio = [load_waveform(str(path)) for path in HELD_OUT_CLIPS]
    yield model, processor, processor(audio, sampling_rate=16000, return_tensors="pt")
    forget_compiled_decoding(model)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's tests (restored after): for small models, such as FireRedVAD's, whose calls
    are a few frames each, where on a shared CPU the threads' synchronisation costs more than it saves."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def punc_dir(tmp_path_factory) -> Path:
    """An original-format FireRedPunc folder: a tiny random BERT in upstream's layout (tests/test_punctuation.py)."""
    from tests.test_punctuation import make_upstream_folder

    return make_upstream_folder(tmp_path_factory.mktemp("punc") / "FireRedPunc")


@pytest.fixture(scope="session")
def converted_punc_dir(tmp_path_factory, punc_dir) -> Path:
    from transformers_fireredasr.conversion.punc import convert_punc

    return convert_punc(punc_dir, tmp_path_factory.mktemp("punc_hf") / "converted")


@pytest.fixture(scope="session")
def marking_punc_dir(tmp_path_factory, converted_punc_dir) -> Path:
    """A converted punctuation model that writes `。` after every word: each word is a sentence, so a test in another
    process (a server, a Ray actor) can tell a punctuated response from an unpunctuated one."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(converted_punc_dir)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.bias[model.config.label2id["。"]] = 5.0
    folder = tmp_path_factory.mktemp("punc_marking") / "marking"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(converted_punc_dir).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def lid_dir(tmp_path_factory, trained_aed_dir, speech) -> Path:
    """An original-format FireRedLID folder: the trained AED's encoder and CMVN, a 6-layer label decoder over 120
    labels trained a little on the corpus (tests/reference_lid.py), so its labels follow the audio."""
    from tests.reference_lid import build_reference_lid

    paths = [u.path for u in speech]
    parent = built_once(
        tmp_path_factory, "lid", lambda folder: build_reference_lid(folder / "FireRedLID", trained_aed_dir, paths)
    )
    return parent / "FireRedLID"


@pytest.fixture(scope="session")
def converted_lid_dir(tmp_path_factory, lid_dir) -> Path:
    from transformers_fireredasr.conversion.lid import convert_lid

    return convert_lid(lid_dir, tmp_path_factory.mktemp("lid_hf") / "converted")


@pytest.fixture(scope="session")
def vad_recordings(speech) -> dict[str, np.ndarray]:
    """Speech with pauses (four utterances of the corpus), digital silence, and noise, as float audio."""
    from tests.audio import join_with_pauses

    spoken = [u.audio for u in speech if u.text][:4]
    recording, _ = join_with_pauses(spoken, np.random.default_rng(7))
    return {"speech": recording, "silence": np.zeros(32000, dtype=np.float32), "noise": noise(3.0, seed=11)}


@pytest.fixture(scope="session")
def vad_release_dir(tmp_path_factory, vad_recordings) -> Path:
    """An original-format FireRedVAD release: `VAD/`, `Stream-VAD/` and `AED/`, upstream's DFSMN with random weights
    and an output layer fitted to frame energy (tests/vad_reference.py)."""
    from tests.vad_reference import make_upstream_release

    calibration = [vad_recordings["speech"], vad_recordings["noise"], vad_recordings["silence"]]
    return make_upstream_release(tmp_path_factory.mktemp("vad") / "FireRedVAD", calibration)


@pytest.fixture(scope="session")
def converted_vad_dir(tmp_path_factory, vad_release_dir) -> Path:
    """The release converted: the VAD variant at the top, `Stream-VAD/` and `AED/` as subfolders."""
    from transformers_fireredasr.conversion.vad import convert_vad

    return convert_vad(vad_release_dir, tmp_path_factory.mktemp("vad_hf") / "converted")
