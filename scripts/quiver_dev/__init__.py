"""The project's dev tooling: the local stack (`stack`, one module per component), the
benchmarks (`bench`), and the helpers the tests share with them. The shell scripts in
scripts/ run these with `python -m quiver_dev.…` (scripts/lib.sh puts scripts/ on
PYTHONPATH); pytest finds them through its `pythonpath` setting in pyproject.toml.
"""
