"""The Hub model cards: their metadata (the paper's Table 2 in `model-index`), that they ship with the package, and
that the converters write them. Their code blocks run with the docs' (tests/test_docs.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from tests.doc_blocks import code_blocks
from transformers_fireredasr.conversion.hub import MODEL_CARDS, model_card_text, write_model_card

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_CARDS = ROOT / "src" / "transformers_fireredasr" / "model_cards"
CARD_FILES = {name: PACKAGE_CARDS / name / "README.md" for name in MODEL_CARDS}

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


def test_every_card_has_a_runnable_python_example():
    for name, path in CARD_FILES.items():
        blocks = code_blocks(path.read_text("utf-8"))
        assert any(block["language"] == "python" and block["not_tested"] is None for block in blocks), name
