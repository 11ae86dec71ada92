"""The four services, each a thin FastStream app over a core in ``libs/autoglm``."""
