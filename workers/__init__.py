"""Celery workers: thin tasks that call the pipeline's domain code."""
