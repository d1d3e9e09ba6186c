"""Pydantic models of the public v1 contract."""
