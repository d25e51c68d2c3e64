"""specklenet clients: thin ZeroMQ clients that speak :mod:`specklenet.daemon.protocol` only."""
