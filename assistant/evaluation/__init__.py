"""Measuring answers against SQuAD-style question sets (`assistant eval`)."""
