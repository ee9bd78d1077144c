"""The objects × styles built-in: deterministic styles, factors per label, stable ids."""

from __future__ import annotations

import numpy as np
import pytest

from core.datasets.builtin import (
    FASHION_STYLES,
    FASHION_STYLES_SOURCE,
    label_factors,
    list_builtin,
    load_builtin,
    render_styles,
    style_labels,
)
from core.datasets.errors import DatasetImportError

pytestmark = pytest.mark.skipif(
    not {d["name"]: d["available"] for d in list_builtin()}["fashion_styles"],
    reason="dataset-fashion-mnist is not installed",
)


def test_styles_are_deterministic_and_distinct() -> None:
    rng = np.random.default_rng(0)
    base = np.zeros((1, 28, 28), dtype=np.uint8)
    base[0, 6:22, 8:20] = rng.integers(120, 255, (16, 12))
    images = np.repeat(base, len(FASHION_STYLES), axis=0)
    styles = np.arange(len(FASHION_STYLES))
    first, second = render_styles(images, styles), render_styles(images, styles)
    assert np.array_equal(first, second) and first.dtype == np.uint8
    assert np.array_equal(first[0], base[0])  # plain
    assert np.array_equal(first[1], 255 - base[0])  # inverted
    flat = first.reshape(len(styles), -1)
    assert len({row.tobytes() for row in flat}) == len(FASHION_STYLES)


def test_labels_combine_object_and_style() -> None:
    data = load_builtin("fashion_styles", limit=120)
    assert len(data.label_names) == 10 * len(FASHION_STYLES)
    assert data.label_names[3 * len(FASHION_STYLES) + 3] == "Dress, striped"
    factors = label_factors(FASHION_STYLES_SOURCE, data.label_names)
    assert factors is not None
    striped = style_labels("striped")
    assert {factors["style"][c] for c in striped} == {FASHION_STYLES.index("striped")}
    assert sorted(factors["object"][c] for c in striped) == list(range(10))
    record = data.records[0]
    obj, style = data.label_names[record.label].split(", ")
    assert record.caption.endswith(f"{style} style") and obj.lower() in record.caption
    again = load_builtin("fashion_styles", limit=240)
    common = {r.sample_id: r.label for r in again.records}
    assert all(common.get(r.sample_id, r.label) == r.label for r in data.records)
    assert label_factors("builtin:mnist", data.label_names) is None
    with pytest.raises(DatasetImportError, match="unknown style"):
        style_labels("cubist")
