"""Starpad's widgets. They talk to app.core only through the worker's signals."""
