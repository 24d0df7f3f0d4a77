"""PDF text from PDFium's character boxes: glyphs, then lines, then the page's reading order."""
