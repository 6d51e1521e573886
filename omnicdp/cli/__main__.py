"""``python -m omnicdp.cli``: the ``cdp`` command without the console script."""

from omnicdp.cli.main import main

raise SystemExit(main())
