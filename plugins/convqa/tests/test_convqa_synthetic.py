from __future__ import annotations

import re
import time

import pandas as pd
import pytest
from mlplug_convqa.synthetic import (
    BREACH,
    COMPLIANT,
    DRIFT_PRODUCTS,
    ESCALATE,
    LABELS,
    NEEDS_COACHING,
    PRODUCTS,
    _Facts,
    generate_conversations,
)

from mlplug.schema import Role


def test_same_seed_gives_identical_data_and_other_seeds_differ() -> None:
    a = generate_conversations(300, seed=5, drift=0.3)
    b = generate_conversations(300, seed=5, drift=0.3)
    pd.testing.assert_frame_equal(a, b)
    c = generate_conversations(300, seed=6, drift=0.3)
    assert (a["transcript"] != c["transcript"]).mean() > 0.95


def test_every_label_is_present_in_useful_shares() -> None:
    labels = generate_conversations(2000, seed=1)["label"]
    shares = labels.value_counts(normalize=True)
    assert set(shares.index) == set(LABELS)
    assert shares.min() > 0.1, shares


def test_transcripts_are_multi_turn_text_with_speaker_prefixes() -> None:
    frame = generate_conversations(200, seed=2)
    for text in frame["transcript"]:
        lines = text.split("\n")
        assert len(lines) >= 5
        assert all(re.match(r"^(agent|customer): \S", line) for line in lines), text
    mentioned = {p for p in PRODUCTS if frame["transcript"].str.contains(p).any()}
    assert len(mentioned) >= 5


def test_three_thousand_rows_are_fast() -> None:
    started = time.process_time()  # CPU time: other processes on the machine do not count
    generate_conversations(3000, seed=0)
    # about 0.35 s of CPU; generous so that a slow CI machine does not flake
    assert time.process_time() - started < 2.0


def test_drift_brings_new_products_voice_transcripts_and_phrasing() -> None:
    calm = generate_conversations(600, seed=3, drift=0.0)["transcript"]
    drifted = generate_conversations(600, seed=3, drift=1.0)["transcript"]
    new_products = "|".join(DRIFT_PRODUCTS).replace("e-bike", "e-?bike")
    assert not calm.str.contains(new_products).any()
    assert drifted.str.contains(new_products).mean() > 0.3
    # voice: no upper case, no punctuation apart from apostrophes and the speaker colon
    voice = drifted.str.replace(r"^(agent|customer):", "", regex=True)
    assert not drifted.str.contains(r"[A-Z?!]").any()
    assert voice.str.contains(r"\b(?:uh|um|er)\b").mean() > 0.5
    assert not calm.str.contains(r"\b(?:uh|er)\b").any()
    assert drifted.str.contains("wrap-up|play that back|wrap up").any()


def test_half_drift_mixes_chat_and_voice() -> None:
    texts = generate_conversations(600, seed=4, drift=0.5)["transcript"]
    voice_share = (~texts.str.contains(r"[A-Z]")).mean()
    assert 0.3 < voice_share < 0.7


@pytest.mark.parametrize("drift", [-0.1, 1.5])
def test_drift_outside_unit_interval_is_rejected(drift: float) -> None:
    with pytest.raises(ValueError, match="drift"):
        generate_conversations(10, drift=drift)


def _facts(**changes: object) -> _Facts:
    base = dict(
        product="credit card",
        device="card",
        fault="x",
        intent="billing",
        company="Acme",
        agent="Sam",
        customer_first=False,
        greeting="first",
        empathy=True,
        anger="none",
        anger_at_end=False,
        resolved=True,
        reversal=False,
        breach="none",
        security_talk="none",
        allowed_promise=False,
        followup=True,
        summary="end",
        confuser=False,
        verify=True,
        voice=False,
        new_phrasing=False,
    )
    return _Facts(**{**base, **changes})


def test_rubric_depends_on_order_and_content() -> None:
    assert _facts().label() == COMPLIANT
    assert _facts(greeting="late").label() == NEEDS_COACHING
    assert _facts(summary="middle").label() == NEEDS_COACHING
    assert _facts(anger="angry", empathy=False).label() == NEEDS_COACHING
    assert _facts(anger="angry", empathy=True).label() == COMPLIANT
    assert _facts(anger="legal", resolved=False).label() == ESCALATE
    assert _facts(anger="none", resolved=False).label() == COMPLIANT  # calm and unresolved
    assert _facts(breach="accepts_offer", anger="legal", resolved=False).label() == BREACH
    assert _facts(security_talk="offer_refused").label() == COMPLIANT


def test_same_words_different_order_different_label() -> None:
    """A late greeting and a recap before the follow-up reuse the compliant wording."""
    frame = generate_conversations(400, seed=9)
    greeting = r"(?i)(?:thanks for contacting|welcome to|from \w+ here|thanks for calling)"
    first_agent = frame["transcript"].map(lambda t: next(x for x in t.split("\n") if x.startswith("agent:")))
    late = frame[~first_agent.str.contains(greeting) & frame["transcript"].str.contains(greeting)]
    assert len(late) > 20
    assert late["label"].value_counts().idxmax() == NEEDS_COACHING


def test_task_synthesize_returns_a_validated_dataset(task) -> None:
    data = task.synthesize(120, seed=1)
    assert len(data) == 120
    assert data.schema.classes == tuple(sorted(LABELS))
    assert data.schema.columns_with(Role.TEXT) == ["transcript"]
    assert data.schema.target == "label"
    assert data.y.dtype.kind == "i" and set(data.y) <= set(range(4))
    assert data.frame["conversation_id"].is_unique
    assert task.synthesize(120, seed=1).content_hash() == data.content_hash()
