import sys

from indexnet.cli import main

sys.exit(main())
