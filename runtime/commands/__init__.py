"""The device-side verbs (run, bench, eval, calibrate, build): they work with runtime/ alone."""
