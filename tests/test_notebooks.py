"""The notebooks in `notebooks/` run end to end, as a reader would run them, and show what their text promises.

Each notebook is executed with nbclient (kernel `python3`, working directory `notebooks/`) on an in-memory copy: the
committed file, with its stored outputs, is never rewritten. The checks read the printed outputs, so they hold for
any demo model that transcribes reasonably, whatever its exact transcripts.
"""

from __future__ import annotations

import json
import os
import re
import sys
from itertools import pairwise
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.audio import requires_espeak

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

pytestmark = [
    requires_espeak,  # both notebooks synthesize their speech with espeak-ng and sox
    # Both notebooks start from the bundled demo model (issue #4).
]


def execute(name: str, monkeypatch) -> nbformat.NotebookNode:
    """Runs `notebooks/<name>` and returns the executed copy; a cell that raises fails the test with its traceback."""
    # `!fireredasr-transcribe` must find the console script of this Python even when its environment is not active.
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    before = sorted(path.name for path in NOTEBOOKS.iterdir())
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()
    assert sorted(path.name for path in NOTEBOOKS.iterdir()) == before, "the notebook wrote into notebooks/"
    return notebook


def cell_text(notebook: nbformat.NotebookNode, marker: str) -> str:
    """The printed output (stdout, results) of the one code cell whose source contains `marker`."""
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and marker in cell.source]
    assert len(cells) == 1, f"expected one cell containing {marker!r}, found {len(cells)}"
    assert not [output for output in cells[0].outputs if output.output_type == "error"]
    parts = []
    for output in cells[0].outputs:
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("execute_result", "display_data"):
            parts.append(output.data.get("text/plain", ""))
    return "".join(parts)


def number_after(label: str, text: str) -> float:
    match = re.search(re.escape(label) + r"\s*([0-9.]+)", text)
    assert match, f"{label!r} not in the output:\n{text}"
    return float(match.group(1))


def test_finetune_aed_notebook(monkeypatch):
    notebook = execute("finetune_aed.ipynb", monkeypatch)

    data = cell_text(notebook, "build_corpus(")
    assert "{'train': 24, 'test': 6}" in data

    evaluated = cell_text(notebook, "before = trainer.evaluate()")
    trained = cell_text(notebook, "trainer.train()")
    cer_before = number_after("CER before fine-tuning:", evaluated)
    cer_after = number_after("CER after fine-tuning:", trained)
    losses = json.loads(re.search(r"training loss: (\[.*\])", trained).group(1))
    assert len(losses) == 3 and losses[-1] < losses[0], f"the training loss did not fall: {losses}"
    # The test data is drawn like the demo's training data and holds a few dozen characters: a character or two
    # either way is noise (the notebook says so); fine-tuning that breaks the model is not.
    assert cer_after <= cer_before + 0.05, f"fine-tuning made the CER worse: {cer_before} -> {cer_after}"

    reloaded = cell_text(notebook, "trainer.save_model(")
    reference = re.search(r"reference: (.*)", reloaded).group(1).strip()
    transcript = re.search(r"transcript: ?(.*)", reloaded).group(1).strip()
    assert reference and transcript, reloaded


def test_inference_notebook(monkeypatch):
    notebook = execute("inference.ipynb", monkeypatch)

    assert "'text': '" in cell_text(notebook, "model=str(MODEL_DIR))")
    decoded = cell_text(notebook, "greedy = model.generate(")
    assert "'num_beams': 3" in decoded and "beam 3: [" in decoded and "greedy: [" in decoded
    batch = cell_text(notebook, "batch_size=4)\nfor reference")
    assert len(batch.strip().splitlines()) == 13  # 12 utterances and the CER

    long_audio = cell_text(notebook, "return_timestamps=True")
    assert float(re.search(r"([0-9.]+) s of audio", long_audio).group(1)) > 30
    spans = re.findall(r"^\s*([0-9.]+) -\s+([0-9.]+) s ", long_audio, re.MULTILINE)
    chunks = [(float(start), float(end)) for start, end in spans]
    assert len(chunks) >= 2, long_audio
    for (start, end), (next_start, _) in pairwise(chunks):
        assert start < end <= next_start
    assert chunks[-1][0] < chunks[-1][1]

    lines = [json.loads(line) for line in cell_text(notebook, "!cd {work}").splitlines() if line.startswith("{")]
    assert [line["path"] for line in lines] == ["utt0.wav", "utt1.wav"]
    assert all(line["chunks"] and "start" in line["chunks"][0] for line in lines)

    llm = cell_text(notebook, "llm_asr = pipeline(")
    assert "pipeline: {'text': " in llm and "<speech> x " in llm and "generate: [" in llm
    quantized = cell_text(notebook, "BitsAndBytesConfig(load_in_4bit=True)")
    assert "language model: Linear4bit" in quantized and "encoder: Linear\n" in quantized
    assert "generate: [" in quantized
