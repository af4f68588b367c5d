"""The camera service: every source read by its own thread, frames batched across streams, reconnects.

``edgercnn run`` is this service whatever the inputs: a folder of images is one short-lived
stream, eight RTSP cameras are eight long-lived ones. Rooms: ``options`` (what a stream and the
service are told), ``fleet`` (the TOML file that names streams), ``backoff`` (when to retry),
``readers`` (one thread per source and the board they post frames on), ``outputs`` (per-stream
sinks in a run folder that never overwrites), ``metrics`` (Prometheus and health over HTTP),
``loop`` (board -> batches -> detector -> outputs, graceful stop).
"""
