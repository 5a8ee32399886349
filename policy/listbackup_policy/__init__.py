"""ListBackup's policy pack: the guardrails every stack (dev, staging, main) must meet.

``rules`` holds the rules as plain functions; ``storage``, ``queues``, ``functions`` and
``access`` apply them as pulumi-policy policies; ``pack.POLICIES`` lists them all. The pack
itself is constructed in ``policy/__main__.py`` only: constructing it starts the analyzer
server and blocks, so nothing else may import that file.
"""
