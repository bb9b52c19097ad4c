"""emberd-control: the device's control API, a FastCGI responder behind emberd.

``settings`` (its ``control.*`` configuration), ``tunables`` (reading and
changing whitelisted emberd settings), ``files`` (streamed uploads),
``app`` (the endpoints), ``main`` (the ``emberd-control`` command).
"""
