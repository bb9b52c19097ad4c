"""emberd: a small-footprint HTTP/1.1 + HTTP/2 web server for embedded Linux.

The package is laid out by concept: ``config`` (the lighttpd configuration
language and the directive schema), ``modules`` (optional request handlers,
one file each) and ``cli`` (the ``emberd`` command).
"""

__version__ = "0.1.0"
NAME = "emberd"
