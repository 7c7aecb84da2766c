"""The ipywidgets retrieval app of notebook 03: a test query or an uploaded photo, a text, the top-k.

ipywidgets comes with the `notebooks` extra and is imported only when the app is built.
"""

from __future__ import annotations

import html
import io

import pandas as pd
import torch
from matplotlib.figure import Figure
from PIL import Image, UnidentifiedImageError

from tirg.data import RetrievalDataset
from tirg.errors import DataError, TirgError
from tirg.features import FeatureCache
from tirg.models import ComposeModel
from tirg.plots.retrieval_figures import retrieval_figure
from tirg.plots.save import figure_png
from tirg.retrieval import Gallery, RetrievalResult, query_by_index, query_by_photo


class RetrievalApp:
    """Pick a test query or upload an image, type a modification text, see the top-k.

    With a test query and no text (or its own text), the result marks ground-truth hits; any
    other text, or an uploaded image, is composed with the model and searched the same way. A test
    query's source image is left out of its results, whatever the text (where the data set's protocol
    leaves it out: all but FashionIQ); an uploaded image that is in the gallery is shown first,
    marked "same as query", and left out of the ranking likewise.

    The results are a PNG grid (`grid`) and a table of what it shows (`table`); a bad input hides
    both and shows its message (`message`) in their place.
    """

    def __init__(
        self,
        model: ComposeModel,
        cache: FeatureCache,
        dataset: RetrievalDataset,
        k: int = 16,
        columns: int = 4,
        device: str | torch.device = "cpu",
    ) -> None:
        import ipywidgets as widgets

        self.model, self.cache, self.dataset = model, cache, dataset
        self.k, self.columns, self.device = k, columns, device
        self.source = widgets.ToggleButtons(options=["test query", "uploaded image"], description="query image")
        self.query = widgets.BoundedIntText(value=0, min=0, max=len(cache.query_features) - 1, description="test query")
        # width auto: the button grows to the chosen file's name instead of cutting it.
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload image", layout=widgets.Layout(width="auto"))
        self.text = widgets.Text(description="text", layout=widgets.Layout(width="60%"))
        self.button = widgets.Button(description="Search", button_style="primary")
        self.message = widgets.HTML(layout=widgets.Layout(display="none"))
        self.grid = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.table = widgets.HTML()
        self.query.observe(lambda _: self._on_query(), names="value")
        self.upload.observe(lambda _: self._on_upload(), names="value")
        self.button.on_click(lambda _: self.search())
        self._show_query_text()
        self.widget = widgets.VBox(
            [self.source, widgets.HBox([self.query, self.upload]), self.text, self.button, self.message, self.grid, self.table]
        )

    def _show_query_text(self) -> None:
        self.text.placeholder = f'empty: the test query\'s own text, "{self.cache.queries["text"].iloc[self.query.value]}"'

    def _on_query(self) -> None:
        self.source.value = "test query"
        self._show_query_text()

    def _on_upload(self) -> None:
        if self.upload.value:
            name = self.upload.value[0]["name"]
            self.upload.description = f"uploaded: {name}"
            self.upload.tooltip = name
            self.source.value = "uploaded image"

    def uploaded_image(self) -> Image.Image:
        if not self.upload.value:
            raise DataError("no image uploaded yet: use the upload button, or pick 'test query'")
        content = self.upload.value[0]["content"]
        try:
            return Image.open(io.BytesIO(bytes(content))).convert("RGB")
        except (UnidentifiedImageError, OSError) as error:
            raise DataError(f"{self.upload.value[0]['name']} is not a readable image ({error})") from None

    def result(self) -> RetrievalResult:
        """The same queries as `tirg retrieve`: a test query (its source left out) or the uploaded photo."""
        text = self.text.value.strip()
        gallery = Gallery.from_cache(self.cache, self.dataset)
        if self.source.value == "uploaded image":
            image = self.uploaded_image()
            if not text:
                raise ValueError("type a modification text for the uploaded image")
            name = self.upload.value[0]["name"]
            return query_by_photo(self.model, gallery, image, text, self.k, self.device, name, set_aside_copy=True)
        return query_by_index(gallery, int(self.query.value), self.k, text or None, self.model, self.device)

    def figure(self) -> Figure:
        return retrieval_figure(self.result(), self.columns)

    def search(self) -> None:
        """Replace the results with the new query's; a bad input replaces them with its message, not a traceback."""
        try:
            result = self.result()
            png = figure_png(retrieval_figure(result, self.columns))
        except (TirgError, ValueError, OSError) as error:
            self.message.value = f"<b style='color:#b00'>{html.escape(str(error))}</b>"
            self.message.layout.display = None
            self.grid.layout.display = self.table.layout.display = "none"
            return
        self.message.layout.display = "none"
        self.grid.value = png
        self.table.value = results_html(result)
        self.grid.layout.display = self.table.layout.display = None


def results_html(result: RetrievalResult) -> str:
    """The grid's contents as an HTML table: the query's source, then rank, gallery id, caption, score, hit, file."""
    rows = result.rows()
    if result.same_as_query is not None:
        same = result.same_as_query
        rows = [
            {
                "rank": "same as query",
                "id": same,
                "path": str(result.dataset.image_files[same]),
                "caption": result.dataset.captions[same],
                "score": None,
                "hit": None,
            },
            *rows,
        ]
    frame = pd.DataFrame(rows, columns=["rank", "id", "caption", "score", "hit", "path"])
    frame = frame.rename(columns={"id": "gallery id", "path": "file"})
    if result.found.hits is None:
        frame = frame.drop(columns="hit")
    heading = f"<p class='tirg-query'>query image: {html.escape(result.query_path)}; text: {html.escape(result.text)!s}</p>"
    return heading + frame.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="", classes="tirg-results")
