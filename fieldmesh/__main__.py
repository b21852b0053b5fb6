import sys

from fieldmesh.cli import main

sys.exit(main())
