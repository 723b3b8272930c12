"""Starpad's logic: llama.cpp engine, FIM prompts, model files. Imports no Qt."""
