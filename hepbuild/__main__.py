import sys

from hepbuild.cli import main

sys.exit(main())
