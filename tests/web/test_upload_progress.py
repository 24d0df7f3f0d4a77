"""An upload's progress: the file, the stage and counts that move, told to a Gradio-style callback."""

from __future__ import annotations

from pathlib import Path

from assistant.settings import Settings
from assistant.web.service import Service


def write_pdf(path: Path, pages: int) -> Path:
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path))
    for n in range(1, pages + 1):
        for i in range(30):
            pdf.drawString(72, 760 - 22 * i, f"Page {n} line {i}: the Quenby orchard grows pear kind {n * 100 + i}.")
        pdf.showPage()
    pdf.save()
    return path


def test_upload_progress_names_the_stage_and_its_counts_move(tmp_path):
    folder = tmp_path / "gradio"
    folder.mkdir()
    pdf = write_pdf(folder / "orchard.pdf", 4)
    service = Service(Settings.from_env(index_dir=tmp_path / "index", seeds_dir=tmp_path / "none", progress=False))
    calls: list[tuple[object, str, str | None]] = []

    def progress(value, desc="", unit=None):
        calls.append((value, desc, unit))

    done, refused = service.upload([str(pdf)], progress=progress, folder=folder, received={str(pdf)})
    assert refused == [] and done and done[0].startswith("orchard.pdf: indexed")
    pages = [v for v, d, u in calls if d == "orchard.pdf: reading pages"]
    assert pages == [(0, 4), (1, 4), (2, 4), (3, 4)]
    embedded = [v for v, d, u in calls if d == "orchard.pdf: embedding passages"]
    assert embedded and all(total == embedded[0][1] > 0 for _, total in embedded)
    assert [d for _, d, _ in calls].index("orchard.pdf: reading pages") < [d for _, d, _ in calls].index(
        "orchard.pdf: embedding passages"
    )
    assert any(d == "orchard.pdf: saving" for _, d, _ in calls)
    assert {u for v, d, u in calls if "pages" in d} == {"pages"}
