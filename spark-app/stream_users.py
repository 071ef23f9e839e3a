"""spark-submit entry point of quiver's streaming job; `--help` lists every option."""

import sys

from quiver_spark.job import main

if __name__ == "__main__":
    sys.exit(main())
