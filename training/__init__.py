"""Training the span reader shipped in `assistant/reading/model` (needs torch: not part of the runtime)."""
