"""``python -m avatarium_client`` starts the terminal chat."""

import sys

from avatarium_client.chat import main

sys.exit(main())
