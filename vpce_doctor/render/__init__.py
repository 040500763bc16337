"""Renderers: pure functions from a report (or one finding) to text. Nothing here prints."""
