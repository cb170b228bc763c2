"""What to watch in live conversations besides their length (the core profiles that).

A move from chat to voice transcripts, or a new way of talking, shows in style before it
shows in words: speech-to-text drops punctuation and capitals and keeps the fillers.
"""

from __future__ import annotations

import pandas as pd

_FILLERS = r"\b(?:um+|uh+|er+|erm|hmm+|like|you know)\b"


def style_features(X: pd.DataFrame) -> pd.DataFrame:  # noqa: N803
    """Per text column: punctuation and fillers per word, and the share of capital letters."""
    out: dict[str, pd.Series] = {}
    for name in X.columns:
        if not (pd.api.types.is_object_dtype(X[name]) or pd.api.types.is_string_dtype(X[name])):
            continue
        text = X[name].fillna("").astype(str)
        words = text.str.split().str.len().clip(lower=1).astype(float)
        letters = text.str.count(r"[A-Za-z]").clip(lower=1).astype(float)
        out[f"{name}.punctuation_per_word"] = text.str.count(r"[.,!?;:]").astype(float) / words
        out[f"{name}.fillers_per_word"] = text.str.lower().str.count(_FILLERS).astype(float) / words
        out[f"{name}.capital_share"] = text.str.count(r"[A-Z]").astype(float) / letters
    return pd.DataFrame(out, index=X.index)
