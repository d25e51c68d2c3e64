"""specklenet daemon: drives the bench (DMD + camera), records training pairs, runs live inference.

Kept free of imports so that clients can import :mod:`specklenet.daemon.protocol` alone.
"""
