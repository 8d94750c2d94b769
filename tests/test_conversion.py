"""Converting original FireRedASR-AED directories: the output folder, config values and weights, the command-line
converter, clear errors on broken or hostile inputs (a converter never runs code hidden in a downloaded file),
bad audio, and generation length limits."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
import torch
from safetensors import safe_open
from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer, pipeline

import transformers_fireredasr  # noqa: F401 - registers the Auto classes
from tests.conftest import build_reference_aed
from transformers_fireredasr import (
    FireRedAedForConditionalGeneration,
    FireRedAsrFeatureExtractor,
    FireRedAsrProcessor,
    FireRedAsrTokenizer,
)
from transformers_fireredasr.conversion import key_mapping
from transformers_fireredasr.conversion.aed import AED_FILES, convert_aed, main
from transformers_fireredasr.conversion.checkpoint import load_original_package

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = REPO_ROOT / "conversion" / "convert_fireredasr_aed.py"
SMALL_SIZES = dict(d_model=32, n_head=2, n_layers_enc=1, n_layers_dec=1, kernel_size=3)
# The folder `convert_aed` writes. transformers 5 saves the feature extractor inside `processor_config.json`
# (there is no separate `preprocessor_config.json`); `dict.txt` + `train_bpe1000.model` are the tokenizer's files.
CONVERTED_FILES = {
    "config.json",
    "model.safetensors",
    "generation_config.json",
    "processor_config.json",
    "tokenizer_config.json",
    "dict.txt",
    "train_bpe1000.model",
}
# Original keys with no tensor in the converted model: the sinusoid tables and the tied output projection.
DROPPED = ["decoder.positional_encoding.pe", "decoder.tgt_word_prj.weight", "encoder.positional_encoding.pe"]


# ----------------------------------------------------------------------------------------------------------------
# Helpers and fixtures
# ----------------------------------------------------------------------------------------------------------------


def read_package(path: Path) -> dict:
    """Reads a package the tests wrote themselves (trusted), with its argparse args."""
    return torch.load(path, map_location="cpu", weights_only=False)


def converted_name(key: str) -> str:
    """This package's name for an original state-dict key, through the published key-mapping tables."""
    prefix = key.split(".", 1)[0] + "."
    mapping, new_prefix = key_mapping.AED_PREFIXES[prefix]
    return new_prefix + key_mapping.rename_key(key[len(prefix) :], mapping)


def dict_tokens(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text(encoding="utf8").splitlines()]


@pytest.fixture(scope="module")
def small_aed_dir(tmp_path_factory, speech) -> Path:
    """A tiny untrained original-format directory (d_model 32, 1+1 layers, kernel 3): fast to copy and corrupt."""
    return build_reference_aed(tmp_path_factory.mktemp("aed_small"), speech[:2], seed=3, train_steps=0, **SMALL_SIZES)


@pytest.fixture(scope="module")
def converted_small_dir(tmp_path_factory, small_aed_dir) -> Path:
    return convert_aed(small_aed_dir, tmp_path_factory.mktemp("aed_small_hf"))


@pytest.fixture(params=["trained", "small"])
def original_and_converted(request) -> tuple[Path, Path]:
    """(original dir, converted dir) for the trained session fixture and for the tiny one of other sizes."""
    if request.param == "trained":
        return request.getfixturevalue("trained_aed_dir"), request.getfixturevalue("converted_aed_dir")
    return request.getfixturevalue("small_aed_dir"), request.getfixturevalue("converted_small_dir")


@pytest.fixture
def copy_of_small(tmp_path, small_aed_dir) -> Path:
    """A private copy of the four input files of the tiny directory, free to corrupt."""
    folder = tmp_path / "original"
    folder.mkdir()
    for name in AED_FILES:
        shutil.copy(small_aed_dir / name, folder / name)
    return folder


def convert_into(folder: Path, tmp_path: Path) -> Path:
    return convert_aed(folder, tmp_path / "converted")


def rewrite_package(folder: Path, edit) -> None:
    """Loads the (trusted) package of `folder`, applies `edit(package)` and saves it back."""
    package = read_package(folder / "model.pth.tar")
    edit(package)
    torch.save(package, folder / "model.pth.tar")


# ----------------------------------------------------------------------------------------------------------------
# 1. The converted folder
# ----------------------------------------------------------------------------------------------------------------


def test_converted_folder_has_every_file_and_loads(original_and_converted):
    _, converted = original_and_converted
    assert CONVERTED_FILES <= {path.name for path in converted.iterdir()}
    processor_config = json.loads((converted / "processor_config.json").read_text())
    assert processor_config["feature_extractor"]["feature_extractor_type"] == "FireRedAsrFeatureExtractor"
    assert json.loads((converted / "tokenizer_config.json").read_text())["tokenizer_class"] == "FireRedAsrTokenizer"
    assert isinstance(AutoFeatureExtractor.from_pretrained(converted), FireRedAsrFeatureExtractor)
    assert isinstance(AutoTokenizer.from_pretrained(converted), FireRedAsrTokenizer)
    assert isinstance(AutoProcessor.from_pretrained(converted), FireRedAsrProcessor)


def test_config_comes_from_the_original_args(original_and_converted):
    original, converted = original_and_converted
    args = read_package(original / "model.pth.tar")["args"]
    model = FireRedAedForConditionalGeneration.from_pretrained(converted)
    config, encoder = model.config, model.config.encoder_config

    assert (encoder.num_mel_bins, encoder.hidden_size, config.d_model) == (args.idim, args.d_model, args.d_model)
    assert (encoder.num_hidden_layers, config.decoder_layers) == (args.n_layers_enc, args.n_layers_dec)
    assert (encoder.num_attention_heads, config.decoder_attention_heads) == (args.n_head, args.n_head)
    assert encoder.intermediate_size == config.decoder_ffn_dim == 4 * args.d_model
    assert encoder.conv_kernel_size == args.kernel_size
    assert config.vocab_size == args.odim == len(dict_tokens(original / "dict.txt"))
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (args.pad_id, args.sos_id, args.eos_id)
    assert config.decoder_start_token_id == args.sos_id and config.blank_token_id == args.blank_id
    assert config.dropout == encoder.hidden_dropout == args.residual_dropout

    generation = model.generation_config
    assert (generation.decoder_start_token_id, generation.eos_token_id) == (args.sos_id, args.eos_id)
    assert generation.pad_token_id == args.pad_id
    assert (generation.num_beams, generation.softmax_smoothing) == (3, 1.25)
    assert (generation.gnmt_length_penalty, generation.eos_penalty) == (0.6, 1.0)

    processor = FireRedAsrProcessor.from_pretrained(converted)
    tokenizer = processor.tokenizer
    assert len(tokenizer) == args.odim
    special_ids = (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert special_ids == (args.pad_id, args.sos_id, args.eos_id) == (2, 3, 4)


def test_tokenizer_and_cmvn_files_carry_over(original_and_converted):
    original, converted = original_and_converted
    assert (converted / "train_bpe1000.model").read_bytes() == (original / "train_bpe1000.model").read_bytes()
    assert dict_tokens(converted / "dict.txt") == dict_tokens(original / "dict.txt")
    tokenizer = FireRedAsrTokenizer.from_pretrained(converted)
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))] == dict_tokens(original / "dict.txt")

    stats = np.asarray(kaldiio.load_mat(str(original / "cmvn.ark")), dtype=np.float64)
    count = stats[0, -1]
    mean = stats[0, :-1] / count
    istd = 1.0 / np.sqrt(stats[1, :-1] / count - mean**2)
    extractor = FireRedAsrFeatureExtractor.from_pretrained(converted)
    assert extractor.feature_size == 80 and extractor.sampling_rate == 16000
    np.testing.assert_allclose(extractor.cmvn_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(extractor.cmvn_istd, istd, rtol=1e-12)


def test_key_mapping_spot_checks(small_aed_dir):
    """A few names written out by hand, so that the table is checked against more than itself."""
    state = read_package(small_aed_dir / "model.pth.tar")["model_state_dict"]
    expected = {
        "encoder.input_preprocessor.conv.0.weight": "model.encoder.subsampling.conv1.weight",
        "encoder.input_preprocessor.out.bias": "model.encoder.subsampling.out.bias",
        "encoder.layer_stack.0.ffn2.net.4.weight": "model.encoder.layers.0.feed_forward2.linear2.weight",
        "encoder.layer_stack.0.mhsa.layer_norm_k.weight": "model.encoder.layers.0.self_attn.k_norm.weight",
        "encoder.layer_stack.0.mhsa.pos_bias_u": "model.encoder.layers.0.self_attn.bias_u",
        "encoder.layer_stack.0.mhsa.linear_pos.weight": "model.encoder.layers.0.self_attn.relative_k_proj.weight",
        "encoder.layer_stack.0.conv.depthwise_conv.weight": "model.encoder.layers.0.conv_module.depthwise_conv.weight",
        "decoder.tgt_word_emb.weight": "model.decoder.embed_tokens.weight",
        "decoder.layer_stack.0.cross_attn.w_ks.weight": "model.decoder.layers.0.encoder_attn.k_proj.weight",
        "decoder.layer_stack.0.mlp.w_2.bias": "model.decoder.layers.0.fc2.bias",
        "decoder.layer_norm_out.weight": "model.decoder.norm.weight",
    }
    for original, name in expected.items():
        assert original in state
        assert converted_name(original) == name


def test_every_original_tensor_is_converted_exactly(original_and_converted):
    original, converted = original_and_converted
    state = read_package(original / "model.pth.tar")["model_state_dict"]
    with safe_open(converted / "model.safetensors", "pt") as f:
        saved = {name: f.get_tensor(name) for name in f.keys()}
    model = FireRedAedForConditionalGeneration.from_pretrained(converted)
    loaded = model.state_dict()

    assert sorted(key for key in state if key_mapping.is_dropped(key)) == DROPPED
    expected_names = set()
    for key, tensor in state.items():
        if key_mapping.is_dropped(key):
            continue
        name = converted_name(key)
        expected_names.add(name)
        assert saved[name].dtype == torch.float32, key
        assert torch.equal(saved[name], tensor), key
        assert torch.equal(loaded[name], tensor), key
    assert set(saved) == expected_names
    assert set(loaded) == expected_names | {"proj_out.weight"}  # nothing in the model is left uninitialised

    # The output projection is tied to the embedding and equals the original's (tied) tgt_word_prj.
    assert torch.equal(model.proj_out.weight, state["decoder.tgt_word_prj.weight"])
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


# ----------------------------------------------------------------------------------------------------------------
# 2. The command-line converter
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, small_aed_dir) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Runs the converter script as `python conversion/convert_fireredasr_aed.py ...` from the repo root, a
    conversion and `--help` in parallel subprocesses."""
    out = tmp_path_factory.mktemp("cli")
    commands = {
        "float32": ["--input_dir", str(small_aed_dir), "--output_dir", str(out / "float32")],
        "help": ["--help"],
    }
    processes = {
        name: subprocess.Popen(
            [sys.executable, str(CLI), *arguments],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, arguments in commands.items()
    }
    runs = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        runs[name] = (subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr), out / name)
    return runs


def test_cli_converts_a_directory(cli_runs, converted_small_dir, small_aed_dir):
    run, folder = cli_runs["float32"]
    assert run.returncode == 0, run.stderr
    assert CONVERTED_FILES <= {path.name for path in folder.iterdir()}
    model = FireRedAedForConditionalGeneration.from_pretrained(folder)
    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(processor, FireRedAsrProcessor)
    assert model.dtype == torch.float32 and model.generation_config.num_beams == 3
    # Same weights as the in-process conversion (and hence as the original).
    reference = FireRedAedForConditionalGeneration.from_pretrained(converted_small_dir).state_dict()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, reference[name]), name
    assert (
        processor.feature_extractor.cmvn_mean
        == FireRedAsrProcessor.from_pretrained(converted_small_dir).feature_extractor.cmvn_mean
    )


def test_cli_bfloat16(tmp_path, small_aed_dir):
    """`--dtype bfloat16` (through the script's `main`, in process, to spare another interpreter start)."""
    folder = tmp_path / "bfloat16"
    main(["--input_dir", str(small_aed_dir), "--output_dir", str(folder), "--dtype", "bfloat16"])
    with safe_open(folder / "model.safetensors", "pt") as f:
        saved = {name: f.get_tensor(name) for name in f.keys()}
    assert {tensor.dtype for tensor in saved.values()} == {torch.bfloat16}
    state = read_package(small_aed_dir / "model.pth.tar")["model_state_dict"]
    for key, tensor in state.items():
        if not key_mapping.is_dropped(key):
            assert torch.equal(saved[converted_name(key)], tensor.to(torch.bfloat16)), key
    model = FireRedAedForConditionalGeneration.from_pretrained(folder)
    assert model.dtype == torch.bfloat16
    assert isinstance(AutoProcessor.from_pretrained(folder), FireRedAsrProcessor)


def test_cli_help(cli_runs):
    run, _ = cli_runs["help"]
    assert run.returncode == 0, run.stderr
    for option in ("--input_dir", "--output_dir", "--dtype", "--push_to_hub"):
        assert option in run.stdout


def test_cli_arguments_reach_the_converter(tmp_path):
    """`main(argv)` (what the script runs): a missing directory fails clearly; an unknown dtype is refused."""
    with pytest.raises(FileNotFoundError, match="input directory not found"):
        main(["--input_dir", str(tmp_path / "nowhere"), "--output_dir", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exit_info:
        main(["--input_dir", str(tmp_path), "--output_dir", str(tmp_path / "out"), "--dtype", "int8"])
    assert exit_info.value.code == 2
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------------------------------
# 3. Clear errors on broken or hostile input directories
# ----------------------------------------------------------------------------------------------------------------


def test_missing_input_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="input directory not found"):
        convert_aed(tmp_path / "nowhere", tmp_path / "out")


@pytest.mark.parametrize("missing", AED_FILES)
def test_missing_input_file(copy_of_small, tmp_path, missing):
    (copy_of_small / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"lacks {re.escape(missing)} \(expected"):
        convert_into(copy_of_small, tmp_path)
    assert not (tmp_path / "converted").exists()


@pytest.mark.parametrize("content", ["random", "truncated", "empty"])
def test_checkpoint_that_is_not_a_package(copy_of_small, tmp_path, content):
    path = copy_of_small / "model.pth.tar"
    if content == "random":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif content == "truncated":
        path.write_bytes(path.read_bytes()[:2000])
    else:
        path.write_bytes(b"")
    with pytest.raises(ValueError, match="model.pth.tar is not a readable FireRedASR checkpoint"):
        convert_into(copy_of_small, tmp_path)


class _RunsCode:
    """A pickle payload: unpickling it executes code (here: creates a marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


class _NotAllowed:
    """A harmless class that is simply not on the allow-list."""


@pytest.mark.parametrize("container", ["torch_zip", "torch_legacy", "plain_pickle"])
def test_pickled_code_is_never_run(copy_of_small, tmp_path, container):
    """A checkpoint whose pickle would run code is refused, and the code does not run; the same file does run it
    when unpickled without restrictions, so the payload is live."""
    marker = tmp_path / "payload_ran"
    path = copy_of_small / "model.pth.tar"
    package = read_package(path)
    package["args"].payload = _RunsCode(marker)
    if container == "torch_zip":
        torch.save(package, path)
    elif container == "torch_legacy":
        torch.save(package, path, _use_new_zipfile_serialization=False)
    else:
        path.write_bytes(pickle.dumps(package))

    with pytest.raises(ValueError, match="not a readable FireRedASR checkpoint"):
        convert_into(copy_of_small, tmp_path)
    with pytest.raises(ValueError, match="not a readable FireRedASR checkpoint"):
        load_original_package(path)
    assert not marker.exists()
    assert not (tmp_path / "converted").exists()

    if container == "plain_pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    ("extra", "global_name"),
    [(_NotAllowed(), "_NotAllowed"), (_NotAllowed, "_NotAllowed"), (os.system, f"{os.system.__module__}.system")],
    ids=["instance", "class", "function"],
)
def test_objects_outside_the_allow_list_are_refused(copy_of_small, tmp_path, extra, global_name):
    """Only tensors, containers and `argparse.Namespace` may be unpickled (torch's weights-only allow-list, which
    also admits `collections.OrderedDict`, the type of every original state dict)."""
    rewrite_package(copy_of_small, lambda package: package.update(extra=extra))
    with pytest.raises(ValueError, match=rf"only tensors and argparse.Namespace are allowed(.|\n)*{global_name}"):
        convert_into(copy_of_small, tmp_path)


def test_package_without_model_state_dict(copy_of_small, tmp_path):
    rewrite_package(copy_of_small, lambda package: package.pop("model_state_dict"))
    with pytest.raises(ValueError, match=r"has no 'model_state_dict' \(found \['args'\]\)"):
        convert_into(copy_of_small, tmp_path)


def test_package_that_is_not_a_dict(copy_of_small, tmp_path):
    torch.save([torch.zeros(2)], copy_of_small / "model.pth.tar")
    with pytest.raises(ValueError, match=r"has no 'model_state_dict' \(found list\)"):
        convert_into(copy_of_small, tmp_path)


def test_args_missing_a_required_field(copy_of_small, tmp_path):
    rewrite_package(copy_of_small, lambda package: delattr(package["args"], "n_head"))
    with pytest.raises(ValueError, match="'args' lacks n_head$"):
        convert_into(copy_of_small, tmp_path)


def test_args_that_are_not_a_namespace(copy_of_small, tmp_path):
    rewrite_package(copy_of_small, lambda package: package.update(args=vars(package["args"])))
    with pytest.raises(ValueError, match="'args' should be an argparse.Namespace, got dict"):
        convert_into(copy_of_small, tmp_path)


@pytest.mark.parametrize(
    "key",
    [
        "ctc.ctc_extra.weight",
        "encoder.layer_stack.0.extra.weight",
    ],
)
def test_unexpected_state_dict_key(copy_of_small, tmp_path, key):
    rewrite_package(copy_of_small, lambda package: package["model_state_dict"].update({key: torch.zeros(2)}))
    with pytest.raises((KeyError, ValueError), match=re.escape(key)):
        convert_into(copy_of_small, tmp_path)


def test_a_ctc_head_of_the_wrong_shape(copy_of_small, tmp_path):
    """`ctc.ctc_lo` marks a FireRedASR2 checkpoint; one that does not fit the args is refused like any tensor."""
    rewrite_package(
        copy_of_small, lambda package: package["model_state_dict"].update({"ctc.ctc_lo.weight": torch.zeros(2)})
    )
    with pytest.raises((RuntimeError, ValueError), match=r"ctc_head\.weight"):
        convert_into(copy_of_small, tmp_path)


@pytest.mark.parametrize(
    ("key", "name"),
    [
        ("decoder.layer_stack.0.mlp.w_1.weight", "model.decoder.layers.0.fc1.weight"),
        ("encoder.layer_stack.0.mhsa.pos_bias_v", "model.encoder.layers.0.self_attn.bias_v"),
        ("decoder.tgt_word_emb.weight", "model.decoder.embed_tokens.weight"),
    ],
)
def test_missing_state_dict_tensor(copy_of_small, tmp_path, key, name):
    rewrite_package(copy_of_small, lambda package: package["model_state_dict"].pop(key))
    with pytest.raises(ValueError, match=rf"does not match its args: missing \['{re.escape(name)}'\]"):
        convert_into(copy_of_small, tmp_path)


def test_tensor_of_the_wrong_shape(copy_of_small, tmp_path):
    """Args that disagree with the weights. (load_state_dict's RuntimeError; every other mismatch is a ValueError.)"""
    rewrite_package(copy_of_small, lambda package: setattr(package["args"], "d_model", 64))
    with pytest.raises(
        (RuntimeError, ValueError), match=r"size mismatch for model\.encoder\.subsampling\.out\.weight"
    ):
        convert_into(copy_of_small, tmp_path)


@pytest.mark.parametrize("change", [-1, 1])
def test_dict_size_must_match_odim(copy_of_small, tmp_path, change):
    path = copy_of_small / "dict.txt"
    lines = path.read_text(encoding="utf8").splitlines()
    odim = len(lines)
    lines = lines[:-1] if change < 0 else [*lines, f"EXTRA {odim}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    with pytest.raises(
        ValueError, match=rf"dict.txt has {odim + change} tokens but the model's output size is {odim}"
    ):
        convert_into(copy_of_small, tmp_path)
    assert not (tmp_path / "converted").exists()


def _cmvn(folder: Path) -> np.ndarray:
    return np.asarray(kaldiio.load_mat(str(folder / "cmvn.ark")), dtype=np.float64).copy()


def _count_zero(folder: Path) -> None:
    stats = _cmvn(folder)
    stats[0, -1] = 0
    kaldiio.save_mat(str(folder / "cmvn.ark"), stats)


def _three_rows(folder: Path) -> None:
    kaldiio.save_mat(str(folder / "cmvn.ark"), np.ones((3, 81)))


def _one_column(folder: Path) -> None:
    kaldiio.save_mat(str(folder / "cmvn.ark"), np.ones((2, 1)))


def _forty_bins(folder: Path) -> None:
    kaldiio.save_mat(str(folder / "cmvn.ark"), np.ascontiguousarray(_cmvn(folder)[:, 40:]))


def _nan_stats(folder: Path) -> None:
    stats = _cmvn(folder)
    stats[1, 3] = np.nan
    kaldiio.save_mat(str(folder / "cmvn.ark"), stats)


def _not_kaldi(folder: Path) -> None:
    (folder / "cmvn.ark").write_bytes(b"this is not a kaldi archive\n")


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (_count_zero, r"cmvn.ark has a frame count of 0.0"),
        (_three_rows, r"cmvn.ark should hold a 2 x \(dim \+ 1\) Kaldi CMVN stats matrix, got shape \(3, 81\)"),
        (_one_column, r"cmvn.ark should hold a 2 x \(dim \+ 1\) Kaldi CMVN stats matrix, got shape \(2, 1\)"),
        (_forty_bins, r"cmvn.ark.*40.*80|cmvn.ark.*80.*40"),
        (_nan_stats, r"cmvn.ark.*(NaN|finite)"),
        (_not_kaldi, r"cmvn.ark"),
    ],
    ids=["count_0", "three_rows", "one_column", "40_bins_vs_idim_80", "nan", "not_kaldi"],
)
def test_malformed_cmvn(copy_of_small, tmp_path, corrupt, match):
    corrupt(copy_of_small)
    with pytest.raises(ValueError, match=match):
        convert_into(copy_of_small, tmp_path)


# ----------------------------------------------------------------------------------------------------------------
# 4. Bad audio and features
# ----------------------------------------------------------------------------------------------------------------

GOOD_AUDIO = (np.random.default_rng(0).normal(0.0, 0.1, 16000)).astype(np.float32)
BAD_AUDIO = [
    (np.zeros(0, np.float32), 16000, r"Audio 0 is empty"),
    (np.zeros(399, np.float32), 16000, r"399 samples, shorter than one 25 ms frame \(400 samples at 16000 Hz\)"),
    (np.full(1000, np.nan, np.float32), 16000, r"NaN or infinite"),
    (np.concatenate([GOOD_AUDIO, [np.inf]]).astype(np.float32), 16000, r"NaN or infinite"),
    (np.zeros((1, 2, 1000), np.float32), 16000, r"1-D \(samples\) or 2-D \(batch, samples\).*\(1, 2, 1000\)"),
    (GOOD_AUDIO, 8000, r"expects audio sampled at 16000 Hz, got 8000 Hz"),
]
BAD_AUDIO_IDS = ["empty", "399_samples", "nan", "inf", "rank_3", "8_khz"]


@pytest.fixture(scope="module")
def small_model(converted_small_dir):
    model = FireRedAedForConditionalGeneration.from_pretrained(converted_small_dir).eval()
    return model, FireRedAsrProcessor.from_pretrained(converted_small_dir)


@pytest.mark.parametrize(("audio", "sampling_rate", "match"), BAD_AUDIO, ids=BAD_AUDIO_IDS)
def test_processor_rejects_bad_audio(small_model, audio, sampling_rate, match):
    _, processor = small_model
    with pytest.raises(ValueError, match=match):
        processor(audio, sampling_rate=sampling_rate, return_tensors="pt")


def test_processor_boundaries(small_model):
    """One window (400 samples) is the shortest audio; it gives one frame, which the model decodes."""
    model, processor = small_model
    inputs = processor(GOOD_AUDIO[:400], sampling_rate=16000, return_tensors="pt")
    assert inputs["input_features"].shape == (1, 1, 80)
    assert model.generate(**inputs, num_beams=1).shape[0] == 1
    with pytest.raises(ValueError, match="Got an empty batch"):
        processor([], sampling_rate=16000)
    with pytest.raises(ValueError, match="Audio 1 has 100 samples"):
        processor([GOOD_AUDIO, GOOD_AUDIO[:100]], sampling_rate=16000)


@pytest.mark.parametrize("original_beam_search", [True, False])
def test_generate_rejects_features_of_the_wrong_shape(small_model, original_beam_search):
    model, _ = small_model
    for shape in [(1, 50, 40), (1, 50, 81), (50, 80)]:
        with pytest.raises(ValueError, match=rf"must have shape \(batch, frames, 80\), got {re.escape(str(shape))}"):
            model.generate(torch.zeros(shape), num_beams=1, original_beam_search=original_beam_search)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.generate(torch.full((1, 50, 80), float("inf")), original_beam_search=original_beam_search)
    with pytest.raises(ValueError, match="floating point"):
        model.generate(torch.zeros(1, 50, 80, dtype=torch.long), original_beam_search=original_beam_search)


def test_generate_rejects_zero_frames(small_model):
    model, _ = small_model
    with pytest.raises(ValueError, match="frame"):
        model.generate(torch.zeros(1, 0, 80))


def test_generate_rejects_a_mask_of_the_wrong_length(small_model):
    model, _ = small_model
    with pytest.raises(ValueError, match="attention_mask"):
        model.generate(torch.zeros(2, 50, 80), attention_mask=torch.ones(2, 30, dtype=torch.long))


@pytest.fixture(scope="module")
def small_pipeline(converted_small_dir):
    return pipeline("automatic-speech-recognition", model=str(converted_small_dir), device="cpu")


# The pipeline reads any input through audio_io, whose messages differ from the processor's.
PIPELINE_BAD_AUDIO = [
    (np.zeros(0, np.float32), 16000, r"the audio is empty \(0 samples\)"),
    (np.zeros(399, np.float32), 16000, r"399 samples, shorter than one 25 ms frame \(400 samples at 16000 Hz\)"),
    (np.full(1000, np.nan, np.float32), 16000, r"NaN or infinite"),
    (np.concatenate([GOOD_AUDIO, [np.inf]]).astype(np.float32), 16000, r"NaN or infinite"),
]


@pytest.mark.parametrize(("audio", "sampling_rate", "match"), PIPELINE_BAD_AUDIO, ids=BAD_AUDIO_IDS[:4])
def test_pipeline_rejects_bad_audio(small_pipeline, audio, sampling_rate, match):
    with pytest.raises(ValueError, match=match):
        small_pipeline({"raw": audio, "sampling_rate": sampling_rate})


def test_pipeline_errors_on_odd_shapes_and_bad_batch_items(small_pipeline):
    assert isinstance(small_pipeline(GOOD_AUDIO)["text"], str)
    with pytest.raises(ValueError, match=r"expected a 1-D waveform .*\(1, 2, 1000\)"):
        small_pipeline(np.zeros((1, 2, 1000), np.float32))
    with pytest.raises(ValueError, match="100 samples, shorter than one 25 ms frame"):
        small_pipeline([GOOD_AUDIO, GOOD_AUDIO[:100]], batch_size=2)


# ----------------------------------------------------------------------------------------------------------------
# 5. Generation length and greedy decoding on the trained model
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_batch(converted_aed_dir, speech):
    model = FireRedAedForConditionalGeneration.from_pretrained(converted_aed_dir).eval()
    processor = FireRedAsrProcessor.from_pretrained(converted_aed_dir)
    utterances = [speech[i] for i in (0, 3, 7, 10, 13, -1)]
    inputs = processor([u.audio for u in utterances], sampling_rate=16000, return_tensors="pt")
    return model, processor, utterances, inputs


def content(row: torch.Tensor, config) -> list[int]:
    """Generated token ids without the start token, `<eos>` and padding."""
    ids = row.tolist()
    assert ids[0] == config.decoder_start_token_id
    return [token for token in ids[1:] if token not in (config.eos_token_id, config.pad_token_id)]


@torch.no_grad()
def test_greedy_equals_transformers_greedy(trained_batch):
    """The original procedure with one beam and transformers' greedy search pick the same tokens (eos penalty 1)."""
    model, processor, utterances, inputs = trained_batch
    original = model.generate(**inputs, num_beams=1)
    transformers_greedy = model.generate(**inputs, num_beams=1, original_beam_search=False)
    assert [content(row, model.config) for row in original] == [
        content(row, model.config) for row in transformers_greedy
    ]
    texts = processor.batch_decode(original, skip_special_tokens=True)
    assert texts[:-1] == [u.text for u in utterances[:-1]]  # the trained model transcribes its corpus
    assert len(set(texts)) == len(texts)


@torch.no_grad()
@pytest.mark.parametrize(
    "mode",
    [{}, {"num_beams": 1}, {"num_beams": 1, "original_beam_search": False}, {"original_beam_search": False}],
    ids=["published_beam", "greedy", "transformers_greedy", "transformers_beam"],
)
def test_max_new_tokens_caps_transcripts(trained_batch, mode):
    model, processor, utterances, inputs = trained_batch
    full = model.generate(**inputs, num_beams=1)
    capped = model.generate(**inputs, max_new_tokens=2, **mode)
    assert capped.shape[0] == len(utterances)
    assert capped.shape[1] <= 1 + 2 + 1  # start token, two tokens, possibly <eos>
    for full_row, capped_row in zip(full, capped, strict=True):
        tokens = content(capped_row, model.config)
        assert len(tokens) <= 2
        full_tokens = content(full_row, model.config)
        if mode.get("num_beams") == 1:
            assert tokens == full_tokens[:2]  # greedy: a prefix of the uncapped transcript
    assert all(len(content(row, model.config)) > 2 for row in full[:-1])  # so the cap really bites
    assert all(len(text) <= 2 for text in processor.batch_decode(capped, skip_special_tokens=True))


def test_max_length_lowers_the_limit_despite_the_configs_max_new_tokens(trained_batch):
    """A user's `max_length` (start token included) caps transcripts even though the converted generation config
    sets `max_new_tokens` as its ceiling."""
    model, _, _, inputs = trained_batch
    assert model.generation_config.max_new_tokens is not None
    capped = model.generate(**inputs, num_beams=1, max_length=3)
    assert all(len(content(row, model.config)) <= 2 for row in capped)
    full = model.generate(**inputs, num_beams=1)
    assert [content(r, model.config)[:2] for r in full] == [content(r, model.config) for r in capped]


def test_push_to_hub_uploads_the_converted_folder(monkeypatch, tmp_path):
    """`--push_to_hub REPO_ID` creates the repo and uploads the folder (the Hub client is replaced here)."""
    import huggingface_hub

    from transformers_fireredasr.conversion.hub import finish_conversion

    calls = []

    class FakeApi:
        def create_repo(self, repo_id, exist_ok):
            calls.append(("create", repo_id, exist_ok))

        def upload_folder(self, folder_path, repo_id):
            calls.append(("upload", folder_path, repo_id))

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert finish_conversion(tmp_path, "me/fireredasr") == tmp_path
    assert calls == [("create", "me/fireredasr", True), ("upload", str(tmp_path), "me/fireredasr")]
    calls.clear()
    finish_conversion(tmp_path, None)
    assert calls == []
