"""Deploy stages, facts and data for turning RTX 5090 hosts into SGLang servers."""
