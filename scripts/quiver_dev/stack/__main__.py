import sys

from quiver_dev.stack import main

if __name__ == "__main__":
    sys.exit(main())
