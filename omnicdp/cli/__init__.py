"""The entry points: the ``cdp`` command (``main``), the process supervisor behind
``cdp up`` (``supervisor``), the demo (``demo``) and tables for people (``tables``).

The top layer: it may import every service, but imports one only when its command runs,
so ``cdp --help`` stays fast.
"""
