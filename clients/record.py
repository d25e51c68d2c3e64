"""placeholder"""


def register(subparsers):
    del subparsers
