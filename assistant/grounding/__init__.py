"""Checking what an answer says against the passages it cites: claims, support, citation markers."""
