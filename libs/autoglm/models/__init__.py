"""Reasoning models: text encoder, answer models and the interface inference serves them by."""
