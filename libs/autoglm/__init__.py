"""Open-AutoGLM shared library: settings, contracts, bus, tracing, stores and model code."""

__version__ = "0.1.0"
