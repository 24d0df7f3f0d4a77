"""Reading files into documents: the walk, one loader per format family, limits, chunking."""
