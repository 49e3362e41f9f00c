"""`python -m taxifare.cli`, the same as the `taxifare` command."""

import sys

from taxifare.cli import main

sys.exit(main())
