"""The Hub model cards: their metadata (the paper's Table 2 in `model-index`), that every ```python block of the cards
and of README.md runs offline, that they ship with the package, and that the converters write them.

Code blocks run each in a fresh interpreter in a scratch folder, after these substitutions: the Hub ids
`FireRedTeam/FireRedASR-AED-L` / `-LLM-L` become the tiny converted models of the session fixtures (the local folder
names `fireredasr-aed-l` / `fireredasr-llm-l` become links to them), and every quoted audio file name (`"a.wav"`,
`"long_audio.wav"`, ...) becomes a synthetic Mandarin recording made in that folder (several utterances with pauses
when the name contains "long"; a copy of the repository's file where the path names one). A block that cannot run offline is marked in the markdown by the comment
`<!-- not-tested: REASON -->` on the line before its fence; only those are skipped, and their number is pinned below.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import numpy as np
import pytest

from tests.audio import noise, write_wav
from transformers_fireredasr.conversion.hub import MODEL_CARDS, model_card_text, write_model_card

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_CARDS = ROOT / "src" / "transformers_fireredasr" / "model_cards"
CARD_FILES = {name: PACKAGE_CARDS / name / "README.md" for name in MODEL_CARDS}
DOC_FILES = {**CARD_FILES, "README": ROOT / "README.md"}

# FireRedASR paper (arXiv 2501.14350), Table 2: CER (%) per public Mandarin test set, keyed by model-index dataset type.
TABLE_2 = {
    "FireRedASR-AED-L": {"aishell1": "0.55", "aishell2": "2.52", "ws_net": "4.88", "ws_meeting": "4.76"},
    "FireRedASR-LLM-L": {"aishell1": "0.76", "aishell2": "2.15", "ws_net": "4.60", "ws_meeting": "4.67"},
    # FireRedASR2S README (2026-02), the same four sets (issue #14).
    "FireRedASR2-AED": {"aishell1": "0.57", "aishell2": "2.51", "ws_net": "4.57", "ws_meeting": "4.53"},
    "FireRedASR2-LLM": {"aishell1": "0.64", "aishell2": "2.15", "ws_net": "4.44", "ws_meeting": "4.32"},
}
AVERAGE_TYPE = "fireredasr-average"
PAPER_AVERAGE = {
    "FireRedASR-AED-L": "3.18",
    "FireRedASR-LLM-L": "3.05",
    "FireRedASR2-AED": "3.05",
    "FireRedASR2-LLM": "2.89",
}

# How many ```python blocks each file may mark `<!-- not-tested: ... -->`: the cards none, README.md a few at most.
NOT_TESTED = {"FireRedASR-AED-L": 0, "FireRedASR-LLM-L": 0, "FireRedASR2-AED": 0, "FireRedASR2-LLM": 0}
MAX_NOT_TESTED_README = 2

HUB_IDS = {
    "FireRedTeam/FireRedASR-AED-L": "aed",
    "FireRedTeam/FireRedASR-LLM-L": "llm",
    "FireRedTeam/FireRedASR2-AED": "aed2",
    "FireRedTeam/FireRedASR2-LLM": "llm",  # the same code as v1; the tiny v1 fixture stands in
}
LOCAL_NAMES = {"fireredasr-aed-l": "aed", "fireredasr-llm-l": "llm"}
MODEL_FIXTURES = {"aed": "converted_aed_dir", "llm": "converted_llm_dir", "aed2": "converted_aed2_dir"}
AUDIO_NAME = re.compile(r"""["']([\w\-./]+\.(?:wav|flac|mp3|ogg|m4a))["']""")
MARKER = re.compile(r"^<!--\s*not-tested:\s*(.+?)\s*-->$")
FENCE = re.compile(r"^```\s*([\w+-]*)")


def code_blocks(markdown: str) -> list[dict]:
    """Every fenced block: `language`, `code`, `line` (1-based, of the opening fence) and `not_tested` (the reason
    from a `<!-- not-tested: ... -->` comment on the closest non-blank line before the fence, or None)."""
    blocks, lines, index = [], markdown.splitlines(), 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        previous = next((line.strip() for line in reversed(lines[:index]) if line.strip()), "")
        marker = MARKER.match(previous)
        end = next((i for i in range(index + 1, len(lines)) if lines[i].startswith("```")), len(lines))
        blocks.append(
            {
                "language": match.group(1).lower(),
                "code": "\n".join(lines[index + 1 : end]) + "\n",
                "line": index + 1,
                "not_tested": marker.group(1) if marker else None,
            }
        )
        index = end + 1
    return blocks


def python_blocks(name: str) -> list[dict]:
    path = DOC_FILES[name]
    if not path.is_file():
        return []
    return [block for block in code_blocks(path.read_text("utf-8")) if block["language"] in ("python", "py")]


def front_matter(text: str) -> dict:
    assert text.startswith("---\n"), "a model card starts with YAML front matter between --- lines"
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def card_metadata(name: str) -> dict:
    return front_matter(CARD_FILES[name].read_text("utf-8"))


def results_by_dataset(metadata: dict) -> dict[str, list[dict]]:
    (entry,) = metadata["model-index"]
    return {result["dataset"]["type"]: result["metrics"] for result in entry["results"]}


# --- metadata -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_CARDS)
def test_card_metadata(name):
    metadata = card_metadata(name)
    assert metadata["language"] == ["zh", "en"]
    assert metadata["license"] == "apache-2.0"
    assert metadata["library_name"] == "transformers"
    assert metadata["pipeline_tag"] == "automatic-speech-recognition"
    assert isinstance(metadata["tags"], list) and "fireredasr" in metadata["tags"]
    assert all(isinstance(tag, str) for tag in metadata["tags"])
    (entry,) = metadata["model-index"]
    assert entry["name"] == name
    for result in entry["results"]:
        assert result["task"]["type"] == "automatic-speech-recognition"
        dataset = result["dataset"]
        assert isinstance(dataset["name"], str) and isinstance(dataset["type"], str) and dataset["split"] == "test"
        for metric in result["metrics"]:
            assert metric["type"] == "cer" and isinstance(metric["value"], float) and isinstance(metric["name"], str)
    assert f"# {name}\n" in CARD_FILES[name].read_text("utf-8")


@pytest.mark.parametrize("name", MODEL_CARDS)
def test_huggingface_hub_reads_the_model_index(name):
    """huggingface_hub's own parser (what the Hub's evaluation widgets use) accepts every result."""
    from huggingface_hub import ModelCard

    data = ModelCard(CARD_FILES[name].read_text("utf-8")).data
    assert data.model_name == name and data.pipeline_tag == "automatic-speech-recognition"
    assert [(r.task_type, r.metric_type, r.dataset_split) for r in data.eval_results] == [
        ("automatic-speech-recognition", "cer", "test")
    ] * (len(TABLE_2[name]) + 1)


@pytest.mark.parametrize("name", MODEL_CARDS)
def test_card_results_are_the_papers_table_2(name):
    results = results_by_dataset(card_metadata(name))
    assert set(results) == {*TABLE_2[name], AVERAGE_TYPE}
    for dataset, cer in TABLE_2[name].items():
        assert [metric["value"] for metric in results[dataset]] == [float(cer)], dataset
    (average,) = results[AVERAGE_TYPE]
    mean = (sum(Decimal(cer) for cer in TABLE_2[name].values()) / 4).quantize(Decimal("0.01"), ROUND_HALF_UP)
    assert average["value"] == float(mean) == float(PAPER_AVERAGE[name])
    body = CARD_FILES[name].read_text("utf-8")
    assert "| " + " | ".join([*TABLE_2[name].values(), PAPER_AVERAGE[name]]) + " |" in body  # the results table


def test_llm_card_names_its_base_model():
    assert card_metadata("FireRedASR-LLM-L")["base_model"] == "Qwen/Qwen2-7B-Instruct"
    assert card_metadata("FireRedASR2-LLM")["base_model"] == "Qwen/Qwen2-7B-Instruct"


# --- packaging ------------------------------------------------------------------------------------------------------


def test_top_level_model_cards_is_a_relative_link_to_the_package_copy():
    link = ROOT / "model_cards"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == PACKAGE_CARDS.resolve()
    for name in MODEL_CARDS:
        assert model_card_text(name) == CARD_FILES[name].read_text("utf-8")
    with pytest.raises(ValueError, match="unknown model card"):
        model_card_text("FireRedASR-AED-XS")


def test_wheel_ships_the_cards(tmp_path):
    """A non-editable install gets the cards and the demo model: build a wheel from a copy of the project and look inside."""
    source = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    result = subprocess.run([*command, "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name in MODEL_CARDS:
            card = archive.read(f"transformers_fireredasr/model_cards/{name}/README.md").decode("utf-8")
            assert card == CARD_FILES[name].read_text("utf-8")
        # The bundled demo model (when this build has one) ships whole, so `fireredasr-transcribe` works after install.
        demo = ROOT / "src" / "transformers_fireredasr" / "demo"
        for path in sorted(demo.iterdir()) if demo.is_dir() else []:
            assert archive.getinfo(f"transformers_fireredasr/demo/{path.name}").file_size == path.stat().st_size


# --- the converters write the card ----------------------------------------------------------------------------------


def test_aed_converter_writes_the_aed_card(converted_aed_dir):
    card = (converted_aed_dir / "README.md").read_text("utf-8")
    assert card == model_card_text("FireRedASR-AED-L")
    assert front_matter(card)["model-index"][0]["name"] == "FireRedASR-AED-L"


def test_llm_converter_writes_the_llm_card(converted_llm_dir):
    card = (converted_llm_dir / "README.md").read_text("utf-8")
    assert card == model_card_text("FireRedASR-LLM-L")
    assert front_matter(card)["model-index"][0]["name"] == "FireRedASR-LLM-L"


def test_write_model_card_replaces_an_existing_readme(tmp_path):
    (tmp_path / "README.md").write_text("old")
    assert write_model_card(tmp_path, "FireRedASR-LLM-L").read_text("utf-8") == model_card_text("FireRedASR-LLM-L")


# --- code blocks ----------------------------------------------------------------------------------------------------


def test_code_block_extraction_and_markers():
    markdown = (
        "text\n```python\nprint(1)\n```\n\n<!-- not-tested: needs a GPU -->\n\n```python\nprint(2)\n```\n"
        "```bash\nls\n```\n<!-- not-tested: x -->\nprose\n```py\nprint(3)\n```\n"
    )
    blocks = code_blocks(markdown)
    assert [(b["language"], b["code"], b["not_tested"]) for b in blocks] == [
        ("python", "print(1)\n", None),
        ("python", "print(2)\n", "needs a GPU"),
        ("bash", "ls\n", None),
        ("py", "print(3)\n", None),  # a marker counts only right before the fence
    ]


def test_not_tested_blocks_stay_few():
    for name, allowed in NOT_TESTED.items():
        assert sum(block["not_tested"] is not None for block in python_blocks(name)) == allowed, name
        assert python_blocks(name), f"the {name} card has python examples"
    assert sum(block["not_tested"] is not None for block in python_blocks("README")) <= MAX_NOT_TESTED_README


def block_params() -> list:
    params = []
    for name in DOC_FILES:
        for number, block in enumerate(python_blocks(name), start=1):
            marks = [pytest.mark.skip(reason=f"not-tested: {block['not_tested']}")] if block["not_tested"] else []
            params.append(pytest.param(name, block, id=f"{name}-block{number}-line{block['line']}", marks=marks))
    return params


def make_audio(folder: Path, names: list[str], speech) -> None:
    """Writes each audio file a block names: a copy of the repository's file of that path if there is one (such as
    README's `examples/audio/...`), else one utterance, or a recording of several when the name contains "long"."""
    voiced = [utterance for utterance in speech if utterance.text][::2]  # each sentence once
    for index, name in enumerate(names):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_file():
            shutil.copy(ROOT / name, path)
            continue
        if "long" in Path(name).stem:
            pauses = [noise(0.8, seed) * 0.02 for seed in range(len(voiced))]
            audio = np.concatenate([piece for u, p in zip(voiced, pauses, strict=True) for piece in (u.audio, p)])
        else:
            audio = voiced[index % len(voiced)].audio
        wav = path if path.suffix == ".wav" else path.with_suffix(".tmp.wav")
        write_wav(wav, audio)
        if wav != path:
            if shutil.which("ffmpeg") is None:
                pytest.skip(f"ffmpeg is needed to write {name}")
            subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), str(path)], check=True)
            wav.unlink()


# What every block runs with; read at import time (threads, offline switches), so the forking parent starts with it.
BLOCK_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
}


@pytest.fixture(scope="module")
def forked(tmp_path_factory):
    """Runs each block in a process of its own, forked from one that imported torch and transformers once."""
    from tests.forked_scripts import ForkedScripts

    runner = ForkedScripts({**os.environ, **BLOCK_ENV, "HF_HOME": str(tmp_path_factory.mktemp("hf_home"))})
    yield runner
    runner.close()


@pytest.mark.parametrize(("name", "block"), block_params())
def test_python_block_runs(name, block, request, speech, tmp_path, forked):
    code = block["code"]
    folder = tmp_path / "run"
    folder.mkdir()
    needed = {kind for hub_id, kind in HUB_IDS.items() if hub_id in code}
    needed |= {kind for local, kind in LOCAL_NAMES.items() if re.search(rf"""["']{re.escape(local)}["']""", code)}
    models = {kind: request.getfixturevalue(MODEL_FIXTURES[kind]) for kind in sorted(needed)}
    for hub_id, kind in HUB_IDS.items():
        code = code.replace(hub_id, str(models[kind])) if kind in models else code
    for local, kind in LOCAL_NAMES.items():
        if kind in models:
            (folder / local).symlink_to(models[kind], target_is_directory=True)
    make_audio(folder, sorted(set(AUDIO_NAME.findall(code))), speech)
    script = folder / "block.py"
    script.write_text(code, encoding="utf-8")
    result = forked.run(script, folder, {**forked.env, "HF_HOME": str(tmp_path / "hf_home")}, timeout=900)
    assert result.returncode == 0, (
        f"{DOC_FILES[name].name} line {block['line']} failed (exit {result.returncode}):\n--- code ---\n{code}"
        f"--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-5000:]}"
    )
