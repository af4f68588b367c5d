"""The package version; kept in runtime/ so that a sidecar records it with runtime/ alone on a camera."""

__version__ = "0.1.0"
