"""Tools run on a development machine, never by the server: ``python -m emberd.tools.soak``
(the bug-#3084 memory soak, ``make soak``).

Nothing here is imported by ``emberd`` or ``emberd-control``.
"""
