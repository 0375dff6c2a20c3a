"""Renderers: turn result tables into things people read. They never measure or compute stats."""
