"""The quickstart notebook runs from top to bottom (CI executes it)."""

from __future__ import annotations

from pathlib import Path

import base64
import io

import matplotlib.pyplot as plt
import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"


def test_quickstart_notebook_executes(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "the scene band, the harmonized spectra and the cube's RGB are plotted"
    for image in images:  # no empty figure: each has real contrast
        pixels = plt.imread(io.BytesIO(base64.b64decode(image["data"]["image/png"])), format="png")
        assert pixels[..., :3].std() > 0.05, "a figure is blank"
    texts = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "EPSG:326" in texts and "L2C" in texts and "LANDSAT_9" in texts and "SENTINEL_2B" in texts
    warnings = [o for o in outputs if o.output_type == "stream" and o.get("name") == "stderr"
                and "Warning" in o.get("text", "")]
    assert len(warnings) <= 2, f"warning flood: {warnings}"
