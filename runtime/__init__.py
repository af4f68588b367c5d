"""Device side: torch-free pre/post-processing and inference backends.

This package never imports torch or ``export``: it can be copied to a camera on its own.
"""
