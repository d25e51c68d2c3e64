"""Wire protocol between the daemon and its clients (placeholder; the streaming issue fills it).

Every message is a ZeroMQ multipart message ``[topic, header, *buffers]``: the topic is UTF-8 bytes,
the header a msgpack map that carries ``PROTOCOL_VERSION``, and buffers are raw C-ordered array
bytes described by the header (dtype, shape). Never pickle. Clients import this module and nothing
else of the daemon, so it depends on msgpack and numpy only.
"""

PROTOCOL_VERSION = 1
