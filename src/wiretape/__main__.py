from wiretape.cli import main

raise SystemExit(main())
