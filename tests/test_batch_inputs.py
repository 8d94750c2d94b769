"""Archive-run inputs: NeMo manifests, folders and globs, `datasets` datasets; bad input is named."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.audio import noise, write_wav
from transformers_fireredasr.audio_io import decode_file
from transformers_fireredasr.batch import InputError, InputSpec, load_items, read_audio_files, read_manifest
from transformers_fireredasr.batch.sources import AudioReader


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three wavs of 1, 2 and 0.5 s (noise) in a folder tree, plus a text file that is not audio."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "sub").mkdir()
    for name, seconds, seed in (("a.wav", 1.0, 0), ("sub/b.wav", 2.0, 1), ("c.wav", 0.5, 2)):
        write_wav(root / name, noise(seconds, seed))
    (root / "notes.txt").write_text("not audio")
    return root


def write_manifest(path, rows):
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


def test_manifest_fields_relative_paths_and_default_ids(folder, tmp_path):
    manifest = write_manifest(
        tmp_path / "m.jsonl",
        [
            {"audio_filepath": str(folder / "a.wav"), "text": "你好", "id": "first"},
            {"audio_filepath": str(folder / "sub/b.wav"), "duration": 9.5},
            {"audio_filepath": str(folder / "sub/b.wav"), "offset": 0.5, "duration": 1.0},
        ],
    )
    relative = write_manifest(folder / "rel.jsonl", [{"audio_filepath": "sub/b.wav"}])
    items = read_manifest(manifest)
    assert [i.id for i in items] == ["first", str(folder / "sub/b.wav"), f"{folder / 'sub/b.wav'}@0.5"]
    assert items[0].text == "你好" and items[0].duration == pytest.approx(1.0)  # from the wav header
    assert items[1].duration == 9.5 and items[2].offset == 0.5
    assert read_manifest(relative)[0].audio_filepath == str(folder / "sub/b.wav")  # relative to the manifest


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", r"m.jsonl:2: not JSON"),
        ({"path": "x.wav"}, r"m.jsonl:2: needs 'audio_filepath'"),
        ({"audio_filepath": "x.wav", "duration": -1}, r"'duration' must be a non-negative number"),
        ({"audio_filepath": "x.wav", "offset": 2.0}, r"an 'offset' needs the segment's 'duration'"),
        ({"audio_filepath": "x.wav", "text": 5}, r"'text' must be a string"),
        ({"audio_filepath": "y.wav", "id": "a"}, r"id 'a' appears twice"),
    ],
)
def test_bad_manifest_lines_are_named(tmp_path, row, message):
    manifest = write_manifest(tmp_path / "m.jsonl", [{"audio_filepath": "x.wav", "id": "a"}, row])
    with pytest.raises(InputError, match=message):
        read_manifest(manifest)


def test_missing_and_empty_manifests(tmp_path):
    with pytest.raises(InputError, match="no such manifest"):
        read_manifest(tmp_path / "none.jsonl")
    with pytest.raises(InputError, match="no items"):
        read_manifest(write_manifest(tmp_path / "empty.jsonl", []))


def test_folder_and_glob(folder):
    assert [i.id for i in read_audio_files(str(folder))] == [str(folder / n) for n in ("a.wav", "c.wav", "sub/b.wav")]
    assert [i.id for i in read_audio_files(str(folder / "**" / "b.wav"))] == [str(folder / "sub/b.wav")]
    with pytest.raises(InputError, match="no audio files found"):
        read_audio_files(str(folder / "*.mp3"))


def test_offset_reads_the_segment(folder, tmp_path):
    manifest = write_manifest(tmp_path / "m.jsonl", [{"audio_filepath": "b.wav", "offset": 0.5, "duration": 1.0}])
    (tmp_path / "b.wav").write_bytes((folder / "sub/b.wav").read_bytes())
    item = read_manifest(manifest)[0]
    audio = AudioReader(InputSpec("manifest", str(manifest)))(item)
    np.testing.assert_array_equal(audio, decode_file(folder / "sub/b.wav")[8000:24000])


def test_datasets_from_disk_and_audiofolder(folder, tmp_path):
    datasets = pytest.importorskip("datasets")
    (folder / "metadata.csv").write_text("file_name,transcription\na.wav,甲\nc.wav,丙\nsub/b.wav,乙\n")
    try:
        spec = InputSpec("dataset", f"audiofolder:{folder}")
        items = load_items(spec)
        assert sorted(i.text for i in items) == ["丙", "乙", "甲"]
        reader = AudioReader(spec)
        for item in items:  # the same samples as the file read by path
            np.testing.assert_array_equal(reader(item), decode_file(item.audio_filepath))
        rows = datasets.Dataset.from_dict(
            {"audio": [str(folder / "a.wav"), str(folder / "c.wav")], "text": ["x", "y"], "key": ["k1", "k2"]}
        ).cast_column("audio", datasets.Audio())
        rows.save_to_disk(tmp_path / "saved")
        saved = InputSpec("dataset", str(tmp_path / "saved"), id_column="key")
        items = load_items(saved)
        assert [(i.id, i.text, i.dataset_index) for i in items] == [("k1", "x", 0), ("k2", "y", 1)]
        np.testing.assert_array_equal(AudioReader(saved)(items[1]), decode_file(folder / "c.wav"))
        with pytest.raises(InputError, match="no column 'nope'"):
            load_items(InputSpec("dataset", str(tmp_path / "saved"), text_column="nope"))
    finally:
        (folder / "metadata.csv").unlink()
