from omnicdp.cli import main

raise SystemExit(main())
