"""notebooks/quickstart.ipynb runs top to bottom (quick settings); any failing cell fails."""
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("GSNN_NOTEBOOK_QUICK", "1")
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 6, f"expected the notebook's figures, got {len(images)}"
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "fewer parameters" in text and "best fitness" in text
    # section 4 trains the demo's rows: full direct, two rules, the direct net of equal size
    for row in ("direct", "neuron_r2 (g=40x2)", "direct_w033", "position_r2 (g=6x2)", "position (g=10)"):
        assert row in text, row
    assert "uJ/inf (W once)" in text and "One seed on" in text and "uJ (W per inference)" in text
