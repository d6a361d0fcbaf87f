"""Split text into sentence-sized pieces so speech can start before all of it is made."""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"(?<=[.!?;…。！？])[\"'”’)\]]*\s+|\n\s*\n|\n")
_CLAUSE_END = re.compile(r"(?<=[,:—–])\s+")


def split_sentences(text: str, *, max_chars: int = 240) -> list[str]:
    """Sentences of `text` (whitespace-trimmed); over-long ones are cut at clause marks."""
    out: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = sentence.strip()
        if not sentence:
            continue
        while len(sentence) > max_chars:
            cut = _last_break(sentence, max_chars)
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def _last_break(sentence: str, max_chars: int) -> int:
    """Position to cut a long sentence: the last clause mark, else the last space."""
    clauses = [m.end() for m in _CLAUSE_END.finditer(sentence, 0, max_chars)]
    if clauses:
        return clauses[-1]
    space = sentence.rfind(" ", 0, max_chars)
    return space if space > 0 else max_chars
