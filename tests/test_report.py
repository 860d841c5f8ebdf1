"""Pictures: the examples grid's exact geometry and marks, query curves, plots as PNGs;
the report's page as HTML and Markdown; the threat model's words."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from pixel_threshold.attack.encodings import PixelEncoding, ThresholdEncoding
from pixel_threshold.report import confusion, curves, examples, page, table
from pixel_threshold.report.examples import MARK, Example


def _pair(
    shape: tuple[int, int, int], changed: list[tuple[int, int]], seed: int = 0
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    rng = np.random.default_rng(seed)
    original = rng.integers(0, 256, size=shape, dtype=np.uint8)
    if shape[-1] == 1:
        original = np.repeat(original, 1, axis=-1)
    adversarial = original.copy()
    for row, column in changed:
        adversarial[row, column, 0] ^= 0x80  # one channel is enough to count as changed
    return original, adversarial


def _panel(
    grid: Image.Image, frame: examples.Layout, number: int, panel: str
) -> npt.NDArray[np.uint8]:
    x, y = frame.panel_origin(number, panel)
    width, height = frame.panel_size
    return np.asarray(grid)[y : y + height, x : x + width]


def _is_mark(pixels: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    marked: npt.NDArray[np.bool_] = np.all(pixels == MARK, axis=-1)
    return marked


def test_small_images_are_upscaled_blocks_with_the_changed_pixels_ringed_and_mapped() -> None:
    changes = [[(0, 0), (3, 5)], [], [(7, 7)]]
    pairs = [_pair((8, 8, 1), changed, seed) for seed, changed in enumerate(changes)]
    shown = [Example(original, adversarial, ("a", "b", "c")) for original, adversarial in pairs]
    grid = examples.render(shown)
    frame = examples.layout((8, 8, 1), 3)
    assert frame.scale == 12 and grid.size == frame.size
    for number, (original, adversarial) in enumerate(pairs):
        mask = np.any(original != adversarial, axis=-1)
        clean = _panel(grid, frame, number, "clean")
        np.testing.assert_array_equal(clean[6::12, 6::12, 0], original[..., 0])  # block centres
        attacked = _panel(grid, frame, number, "adversarial")
        np.testing.assert_array_equal(attacked[6::12, 6::12, 0], adversarial[..., 0])
        np.testing.assert_array_equal(_is_mark(attacked[0::12, 0::12]), mask)  # block corners
        np.testing.assert_array_equal(_is_mark(attacked[11::12, 6::12]), mask)  # bottom edges
        change_map = _panel(grid, frame, number, "changed")
        np.testing.assert_array_equal(_is_mark(change_map[6::12, 6::12]), mask)
        assert _is_mark(change_map).sum() == mask.sum() * 144


def test_large_images_stay_1x_with_rings_around_changed_pixels() -> None:
    changed = [(0, 0), (100, 150), (223, 223)]
    original, adversarial = _pair((224, 224, 3), changed)
    shown = [Example(original, adversarial, ("outcome",))] * 12
    grid = examples.render(shown)
    frame = examples.layout((224, 224, 3), 12)
    assert frame.scale == 1 and frame.columns == 2
    assert grid.size == frame.size and grid.size[0] <= examples.MAX_WIDTH
    attacked = _panel(grid, frame, 11, "adversarial")
    outer = examples.RING_GAP + 2
    ring = np.zeros((2 * outer + 1, 2 * outer + 1), dtype=bool)
    ring[[0, 1, -2, -1], :] = ring[:, [0, 1, -2, -1]] = True  # 2 thick, RING_GAP outside
    around = (slice(100 - outer, 100 + outer + 1), slice(150 - outer, 150 + outer + 1))
    np.testing.assert_array_equal(_is_mark(attacked[around]), ring)
    change_map = _panel(grid, frame, 11, "changed")
    np.testing.assert_array_equal(_is_mark(change_map), np.any(original != adversarial, axis=-1))
    halo = np.all(change_map[around] == examples.HALO, axis=-1)
    np.testing.assert_array_equal(halo, ring)


def test_many_changed_pixels_are_shown_by_the_change_map_only() -> None:
    original = np.full((9, 9, 3), 100, dtype=np.uint8)  # 81 > MAX_RINGS pixels
    adversarial = original + 1
    grid = examples.render([Example(original, adversarial, ())])
    frame = examples.layout((9, 9, 3), 1)
    assert not _is_mark(_panel(grid, frame, 0, "adversarial")).any()
    assert _is_mark(_panel(grid, frame, 0, "changed")).all()


def test_examples_pick_successes_first_in_row_order() -> None:
    assert examples.pick([False, True, False, True, True], count=4) == [1, 3, 4, 0]
    assert examples.pick([False] * 20) == list(range(12))


def test_caption_names_the_outcome_classes_and_probabilities() -> None:
    lines = examples.caption(
        attacked=True, success=True, queries=1200, names=("7", "1"), p_true=(0.99, 0.125)
    )
    assert lines == ("fooled in 1,200 queries", "class 7 -> 1", "p(true) 0.990 -> 0.125")
    assert examples.caption(
        attacked=False, success=False, queries=0, names=("3", "3"), p_true=(0.2, 0.2)
    )[0].startswith("misclassified already")


def test_render_refuses_no_examples_and_mixed_shapes() -> None:
    with pytest.raises(ValueError, match="got none"):
        examples.render([])
    small, large = np.zeros((8, 8, 1), np.uint8), np.zeros((9, 9, 1), np.uint8)
    with pytest.raises(ValueError, match="one image shape"):
        examples.render([Example(small, small, ()), Example(large, large, ())])


def test_success_by_queries_is_the_cumulative_share_of_attacked_images_fooled() -> None:
    queries = np.array([10, 30, 30, 50, 99, 0])
    success = np.array([True, True, True, False, True, False])
    attacked = np.array([True, True, True, True, False, False])
    x, y = curves.success_by_queries(queries, success, attacked)
    assert x.tolist() == [0, 10, 30, 50]
    assert y.tolist() == [0, 0.25, 0.75, 0.75]
    empty = curves.success_by_queries(queries, success, np.zeros(6, dtype=bool))
    assert len(empty[0]) == 0


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()
        return image.size


def test_plots_are_pngs(tmp_path: Path) -> None:
    curve = curves.success_by_queries(
        np.array([5, 9]), np.array([True, False]), np.array([True, True])
    )
    curves.queries_plot(tmp_path / "queries.png", {"pixel": {"a": curve, "b": curve}}, title="q")
    assert _png_size(tmp_path / "queries.png") == (600, 400)
    rows = [
        {"th": th, "success_rate": 0.5, "success_rate_ci_low": 0.3, "success_rate_ci_high": 0.7}
        for th in (1, 3)
    ]
    curves.success_plot(tmp_path / "th.png", {"pixel": {"m es=1": rows}}, title="th")
    assert _png_size(tmp_path / "th.png") == (600, 400)
    curves.success_plot(
        tmp_path / "both.png", {"pixel": {"m": rows}, "threshold": {"m": rows}}, title="th"
    )
    assert _png_size(tmp_path / "both.png") == (1200, 400)  # a panel per attack type
    matrix = np.array([[3, 1], [0, 4]])
    confusion.confusion_plot(tmp_path / "cm.png", matrix, ["cat", "dog"], "clean")
    width, height = _png_size(tmp_path / "cm.png")
    assert width == height == 450
    with pytest.raises(ValueError, match=r"\(3, 3\) matrix, got \(2, 2\)"):
        confusion.confusion_plot(tmp_path / "x.png", matrix, ["a", "b", "c"], "x")


def test_confusion_plot_of_many_classes_shows_only_those_that_occur(tmp_path: Path) -> None:
    matrix = np.zeros((1000, 1000), dtype=np.int64)
    matrix[282, 282] = matrix[967, 967] = matrix[657, 700] = 1
    names = [f"n{index:08d}" for index in range(1000)]
    confusion.confusion_plot(tmp_path / "cm.png", matrix, names, "adversarial")
    width, height = _png_size(tmp_path / "cm.png")
    assert width == height == 100 * (4 + 0.25 * 4)  # 282, 657, 700 and 967


def test_html_table_escapes_values_and_writes_nan_as_empty(tmp_path: Path) -> None:
    table.html_table(
        tmp_path / "t.html", {"model": ["<b>", "x"], "rate": [0.123456, float("nan")]}, "runs"
    )
    text = (tmp_path / "t.html").read_text()
    assert "<td>&lt;b&gt;</td><td>0.1235</td>" in text
    assert "<td>x</td><td></td>" in text


@pytest.mark.parametrize("th_max", [1, 255])
def test_robustness_plot_is_a_png_for_one_level_to_the_whole_range(
    tmp_path: Path, th_max: int
) -> None:
    accuracy = np.linspace(0.9, 0.2, th_max + 1)
    fooled = np.linspace(0.0, 0.7, th_max + 1)
    curves.robustness_plot(
        tmp_path / "robustness.png", accuracy, fooled, left=3, attacked=10, title="pixel attack"
    )
    assert _png_size(tmp_path / "robustness.png") == (600, 400)


def _page(folder: Path, rows: int) -> page.Page:
    Image.new("RGB", (3, 2), (255, 0, 0)).save(folder / "red.png")
    return page.Page(
        title="A <title> & more",
        meta=["written by a test"],
        sections=[
            page.Section("Words", ["a <b> paragraph", page.Caution("few images")]),
            page.Section(
                "Tables",
                [
                    page.Table(["", ""], [["key", "a|b"]]),
                    page.Table(["n"], [[str(row)] for row in range(rows)], listing="all.csv"),
                ],
            ),
            page.Section("Pictures", [page.Picture("red.png", "a red picture")]),
            page.Section("Commands", [page.Commands(["echo 1", "echo <2>"])]),
        ],
    )


def test_html_page_escapes_text_inlines_pictures_and_folds_listings(tmp_path: Path) -> None:
    html = page.write_html(_page(tmp_path, 20), tmp_path, "page.html").read_text()
    assert "<title>A &lt;title&gt; &amp; more</title>" in html
    assert "<p>a &lt;b&gt; paragraph</p>" in html
    assert "<b>Warning:</b> few images" in html
    encoded = re.search(r"src='data:image/png;base64,([^']+)'", html)
    assert encoded is not None
    assert base64.b64decode(encoded.group(1)) == (tmp_path / "red.png").read_bytes()
    assert "<table><tbody><tr><td>key</td><td>a|b</td></tr></tbody></table>" in html  # no header
    assert "<details><summary>all 20 rows (also in all.csv)</summary>" in html
    assert html.count("<tr><td>") == 21  # every listed row, and the key's
    assert "<pre>echo 1\necho &lt;2&gt;</pre>" in html


@pytest.mark.parametrize("rows", [page.MARKDOWN_ROWS, page.MARKDOWN_ROWS + 5])
def test_markdown_page_links_pictures_and_cuts_listings(tmp_path: Path, rows: int) -> None:
    markdown = page.write_markdown(_page(tmp_path, rows), tmp_path, "page.md").read_text()
    assert markdown.startswith("# A <title> & more\n\nwritten by a test  \n\n## Words\n")
    assert "> **Warning:** few images" in markdown
    assert "| key | a\\|b |" in markdown
    assert "![a red picture](red.png)" in markdown
    assert "```sh\necho 1\necho <2>\n```" in markdown
    shown = re.findall(r"^\| (\d+) \|$", markdown, flags=re.MULTILINE)
    assert shown == [str(row) for row in range(page.MARKDOWN_ROWS)]
    more = "... 5 more rows in all.csv"
    assert (more in markdown) == (rows > page.MARKDOWN_ROWS)


def test_encodings_say_what_a_th_allows_in_words() -> None:
    assert PixelEncoding.threat(1, (8, 8, 1)) == (
        "setting at most 1 of its 64 pixels (8x8) to any value (its 1 channel 0-255), the "
        "others untouched"
    )
    assert "(each of its 3 channels 0-255)" in PixelEncoding.threat("th", (224, 224, 3))
    assert ThresholdEncoding.threat(4, (8, 8, 3)) == (
        "moving every one of its 192 values (8x8x3) by at most 4 on the 0-255 scale (1.6% of "
        "the range)"
    )
    assert ThresholdEncoding.threat("th", (8, 8, 3)).endswith("by at most th on the 0-255 scale")
