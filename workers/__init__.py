"""Celery-side code: builds and trains probe models. Submodules import TensorFlow; this does not."""
