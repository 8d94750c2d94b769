"""Transcript writers shared by the command line and the server: plain text, SubRip (srt), WebVTT (vtt) and Praat
TextGrid.

Every writer takes the pipeline's chunk format, `[{"text": ..., "timestamp": (start_s, end_s)}, ...]`, in order.
Chunks without text are skipped: a subtitle cue with nothing to show is an error to most players.

With a language model, chunks, segments and sentences carry `language` (a FireRedLID label such as `zh mandarin`),
and the cues cut from them keep it. WebVTT writes it as a cue language span, `<lang zh-x-mandarin>...</lang>`: its
annotation must be a BCP 47 tag, so the label's language code is the tag and a dialect word after it becomes a
private-use subtag (`language_tag`). SubRip has no language markup (players show unknown tags as text), so srt cues
stay as they are; a TextGrid gets a `language` tier (`language_tier`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence


def _clock(seconds: float, separator: str) -> str:
    """`HH:MM:SS<separator>mmm`, rounded to the millisecond."""
    millis = max(round(seconds * 1000), 0)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt_timestamp(seconds: float) -> str:
    """`HH:MM:SS,mmm` as SubRip writes times."""
    return _clock(seconds, ",")


def vtt_timestamp(seconds: float) -> str:
    """`HH:MM:SS.mmm` as WebVTT writes times."""
    return _clock(seconds, ".")


def _cues(chunks: Sequence[dict]) -> list[tuple[float, float, str]]:
    """`(start, end, text)` of the chunks that have text, with newlines inside a text flattened to spaces."""
    cues = []
    for chunk in chunks:
        text = " ".join(chunk["text"].split())
        if text:
            start, end = chunk["timestamp"]
            cues.append((start, end, text))
    return cues


def language_tag(label: str) -> str | None:
    """The BCP 47 tag of a language label: its language code (ISO 639, two or three letters), then any further
    words, FireRedLID's Chinese dialects, as private-use subtags (`zh mandarin` -> `zh-x-mandarin`, `en` -> `en`).
    A further word that cannot be a subtag is left out; None for a label without a language code."""
    words = label.split()
    if not words or not re.fullmatch(r"[A-Za-z]{2,3}", words[0]):
        return None
    if len(words) == 1 or not all(re.fullmatch(r"[A-Za-z0-9]{1,8}", word) for word in words[1:]):
        return words[0]
    return "-".join([words[0], "x", *words[1:]])


def _with_language(text: str, chunk: Mapping) -> str:
    """A WebVTT cue's text, in a language span when its chunk has a language that makes a BCP 47 tag."""
    tag = language_tag(chunk.get("language") or "")
    return f"<lang {tag}>{text}</lang>" if tag else text


def _language_keys(item: Mapping) -> dict:
    """`language` and `language_confidence` of a chunk, segment or sentence, where it has them."""
    return {key: item[key] for key in LANGUAGE_KEYS if key in item}


def to_srt(chunks: Sequence[dict]) -> str:
    """SubRip subtitles, one numbered cue per timestamped chunk."""
    return "\n".join(
        f"{number}\n{srt_timestamp(start)} --> {srt_timestamp(end)}\n{text}\n"
        for number, (start, end, text) in enumerate(_cues(chunks), start=1)
    )


def to_vtt(chunks: Sequence[dict]) -> str:
    """WebVTT subtitles: the `WEBVTT` header, then one cue per timestamped chunk; a chunk with a `language` has its
    text in a cue language span (`language_tag`)."""
    spoken = [chunk for chunk in chunks if " ".join(chunk["text"].split())]
    cues = "".join(
        f"\n{vtt_timestamp(start)} --> {vtt_timestamp(end)}\n{_with_language(text, chunk)}\n"
        for (start, end, text), chunk in zip(_cues(spoken), spoken, strict=True)
    )
    return "WEBVTT\n" + cues


def _textgrid_string(text: str) -> str:
    return '"' + " ".join(text.split()).replace('"', '""') + '"'  # Praat doubles a quote inside a string


def _tier_intervals(chunks: Sequence[dict], duration: float) -> list[tuple[float, float, str]]:
    """The chunks as intervals covering 0..duration: gaps become empty intervals, overlaps are cut at the earlier
    chunk's end, and times are clipped to the recording (Praat refuses anything else in an interval tier)."""
    intervals, position = [], 0.0
    for start, end, text in _cues(chunks):
        start, end = max(min(round(start, 3), duration), position), min(max(round(end, 3), 0.0), duration)
        if end <= start:
            continue
        if start > position:
            intervals.append((position, start, ""))
        intervals.append((start, end, text))
        position = end
    if position < duration or not intervals:
        intervals.append((position, duration, ""))
    return intervals


def to_textgrid(tiers: Mapping[str, Sequence[dict]], duration: float) -> str:
    """A Praat TextGrid (long text format, the format Praat and phoneticians' tools read) with one interval tier per
    entry of `tiers`, in order: the tier's name and its chunks (the pipeline's chunk format). `duration` is the
    recording's length in seconds; every tier covers it whole, with empty intervals where nothing was said."""
    ends = (chunk["timestamp"][1] for chunks in tiers.values() for chunk in chunks)
    duration = round(max(float(duration), max(ends, default=0.0)), 3)
    lines = [
        'File type = "ooTextFile"',
        'Object class = "TextGrid"',
        "",
        "xmin = 0",
        f"xmax = {duration:.3f}",
        "tiers? <exists>",
        f"size = {len(tiers)}",
        "item []:",
    ]
    for number, (name, chunks) in enumerate(tiers.items(), start=1):
        intervals = _tier_intervals(chunks, duration)
        lines += [
            f"    item [{number}]:",
            '        class = "IntervalTier"',
            f"        name = {_textgrid_string(name)}",
            "        xmin = 0",
            f"        xmax = {duration:.3f}",
            f"        intervals: size = {len(intervals)}",
        ]
        for index, (start, end, text) in enumerate(intervals, start=1):
            lines += [
                f"        intervals [{index}]:",
                f"            xmin = {start:.3f}",
                f"            xmax = {end:.3f}",
                f"            text = {_textgrid_string(text)}",
            ]
    return "\n".join(lines) + "\n"


def language_tier(segments: Sequence[dict]) -> list[dict]:
    """A TextGrid tier of the segments' languages: each segment with a language, as an interval labelled with it
    (`zh mandarin`); empty when no segment has one."""
    return [{"text": s["language"], "timestamp": s["timestamp"]} for s in segments if s.get("language")]


def to_text(text: str) -> str:
    """The transcript as a text file: the text and one final newline."""
    return text.rstrip("\n") + "\n"


def _join_words(texts: Sequence[str]) -> str:
    """Words joined as transcripts are: nothing between Hanzi, one space where two words of Latin script meet."""
    joined = ""
    for text in (t.strip() for t in texts):
        if not text:
            continue
        if joined and joined[-1].isascii() and joined[-1].isalnum() and text[0].isascii() and text[0].isalnum():
            joined += " "
        joined += text
    return joined


def split_evenly(chunk: dict, max_cue_s: float) -> list[dict]:
    """A chunk longer than `max_cue_s` cut into equal-time pieces with the text shared out by characters (words for
    Latin script): the fallback when there are no word times."""
    start, end = chunk["timestamp"]
    units = chunk["text"].split() if " " in chunk["text"].strip() else list(chunk["text"].strip())
    pieces = min(max(1, -(-(end - start) // max_cue_s)), max(1, len(units)))
    pieces = int(pieces)
    if pieces == 1:
        return [chunk]
    cuts = [round(i * len(units) / pieces) for i in range(pieces + 1)]
    step = (end - start) / pieces
    return [
        {
            "text": _join_words(units[cuts[i] : cuts[i + 1]]),
            "timestamp": (round(start + i * step, 3), round(start + (i + 1) * step, 3)),
            **_language_keys(chunk),
        }
        for i in range(pieces)
    ]


def cues_from_words(
    segments: Sequence[dict], words: Sequence[dict], max_pause_s: float = 0.6, max_cue_s: float = 7.0
) -> list[dict]:
    """Subtitle cues from timed words: one per speech segment, cut where the gap between two words is at least
    `max_pause_s` and before a cue would run longer than `max_cue_s`. A cue spans its first word's start to its last
    word's end. Segments whose words are unknown keep their own span (cut evenly if too long). Cues keep their
    segment's language."""
    if not max_pause_s > 0 or not max_cue_s > 0:
        raise ValueError(f"max_pause_s and max_cue_s must be positive, got {max_pause_s} and {max_cue_s}")
    cues: list[dict] = []
    remaining = list(words)
    for segment in segments:
        seg_start, seg_end = segment["timestamp"]
        inside = [w for w in remaining if w["timestamp"][0] < seg_end or segment is segments[-1]]
        remaining = remaining[len(inside) :]
        if not inside:
            cues.extend(split_evenly(segment, max_cue_s) if segment["text"].strip() else [])
            continue
        cues.extend(
            {**_cue(group), **_language_keys(segment)} for group in _groups_at_pauses(inside, max_pause_s, max_cue_s)
        )
    return cues


def _groups_at_pauses(words: Sequence[dict], max_pause_s: float, max_cue_s: float) -> list[list[dict]]:
    """Timed words in runs: a new run starts where the gap to the previous word is at least `max_pause_s`, or where
    the run would otherwise last longer than `max_cue_s`."""
    groups, group = [], [words[0]]
    for word in words[1:]:
        gap = word["timestamp"][0] - group[-1]["timestamp"][1]
        if gap >= max_pause_s or word["timestamp"][1] - group[0]["timestamp"][0] > max_cue_s:
            groups.append(group)
            group = []
        group.append(word)
    groups.append(group)
    return groups


def _cue(words: Sequence[dict]) -> dict:
    return {
        "text": _join_words([w["text"] for w in words]),
        "timestamp": (words[0]["timestamp"][0], words[-1]["timestamp"][1]),
    }


def _letters(text: str) -> int:
    """How many letters, digits and Hanzi `text` holds: what punctuation, spacing and case leave unchanged."""
    return sum(char.isalnum() for char in text)


def _take_letters(text: str, count: int) -> tuple[str, str]:
    """`text` cut after its `count`-th letter, with the marks that follow it (a comma closes the piece before it)."""
    seen, index = 0, 0
    while index < len(text) and seen < count:
        seen += text[index].isalnum()
        index += 1
    while index < len(text) and not text[index].isalnum() and not text[index].isspace():
        index += 1
    return text[:index].strip(), text[index:].strip()


def cues_from_sentences(
    sentences: Sequence[dict], words: Sequence[dict] | None, max_pause_s: float = 0.6, max_cue_s: float = 7.0
) -> list[dict]:
    """Subtitle cues of a punctuated transcript: every sentence (`{"text", "start", "end"}`) ends a cue, so no cue
    runs across a sentence end. A sentence is cut further where two of its timed words are at least `max_pause_s`
    apart or before a cue would run longer than `max_cue_s`; each piece keeps its punctuation. Without word times
    (or when the words do not spell the sentence) a long sentence is cut evenly. Cues keep their sentence's
    language."""
    if not max_pause_s > 0 or not max_cue_s > 0:
        raise ValueError(f"max_pause_s and max_cue_s must be positive, got {max_pause_s} and {max_cue_s}")
    cues: list[dict] = []
    remaining = [w for w in words or () if _letters(w["text"])]
    for sentence in sentences:
        text, letters = " ".join(sentence["text"].split()), _letters(sentence["text"])
        if not letters:
            continue
        chunk = {"text": text, "timestamp": (sentence["start"], sentence["end"]), **_language_keys(sentence)}
        mine, count = [], 0
        while remaining and count < letters:
            count += _letters(remaining[0]["text"])
            mine.append(remaining.pop(0))
        if not mine or count != letters:  # no word times, or words that do not spell this sentence: none from here
            remaining = []
            cues.extend(split_evenly(chunk, max_cue_s))
            continue
        for group in _groups_at_pauses(mine, max_pause_s, max_cue_s):
            piece, text = _take_letters(text, sum(_letters(w["text"]) for w in group))
            timestamp = (group[0]["timestamp"][0], group[-1]["timestamp"][1])
            cues.append({"text": piece, "timestamp": timestamp, **_language_keys(sentence)})
    return cues


def subtitle_cues(
    segments: Sequence[dict],
    words: Sequence[dict] | None,
    max_cue_s: float = 7.0,
    max_pause_s: float = 0.6,
    sentences: Sequence[dict] | None = None,
) -> list[dict]:
    """srt/vtt cues, as the CLI and archive merges cut them: at sentence ends when the transcript is punctuated
    (`cues_from_sentences`), else from timed `words` when there are any (at pauses and before a cue grows too long,
    `cues_from_words`), else each speech segment cut evenly (`split_evenly`)."""
    if sentences is not None:
        return cues_from_sentences(sentences, words, max_pause_s, max_cue_s)
    if words is not None:
        return cues_from_words(segments, words, max_pause_s, max_cue_s)
    return [cue for chunk in segments for cue in split_evenly(chunk, max_cue_s)]


def segment_records(chunks: Sequence[dict]) -> list[dict]:
    """Speech segments as jsonl rows carry them (the CLI's and archive runs'): start, end and text, and with a
    language model their language and its confidence."""
    return [
        {
            "start": c["timestamp"][0],
            "end": c["timestamp"][1],
            "text": c["text"],
            **{key: c[key] for key in LANGUAGE_KEYS if key in c},
        }
        for c in chunks
    ]


# What a language model adds to a result, a segment and a sentence (`engine/language.py`).
LANGUAGE_KEYS = ("language", "language_confidence")


def word_records(chunks: Sequence[dict]) -> list[dict]:
    """Timed words as jsonl rows carry them (the CLI's and archive runs'): start, end, text and confidence."""
    return [
        {"start": w["timestamp"][0], "end": w["timestamp"][1], "text": w["text"], "confidence": w["confidence"]}
        for w in chunks
    ]


__all__ = [
    "LANGUAGE_KEYS",
    "cues_from_sentences",
    "cues_from_words",
    "language_tag",
    "language_tier",
    "segment_records",
    "split_evenly",
    "subtitle_cues",
    "srt_timestamp",
    "to_srt",
    "to_text",
    "to_textgrid",
    "to_vtt",
    "vtt_timestamp",
    "word_records",
]
