"""The lighttpd configuration language and emberd's directive schema.

``lexer`` and ``parser`` turn text into a ``tree`` of blocks; ``schema`` and
``directives`` say what each key means; ``loader`` checks a tree against the
schema and produces ``settings`` (typed values and the per-request matcher);
``printer`` writes settings back out for ``emberd -p``; ``docs`` writes the
reference in docs/configuration.md.
"""
