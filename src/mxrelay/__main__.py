from mxrelay.cli import main

raise SystemExit(main())
