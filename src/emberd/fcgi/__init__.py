"""FastCGI: the record codec shared by mod_fastcgi (client) and emberd-control (responder)."""
