"""Allow ``python -m dscbench``."""

from dscbench.cli import main

if __name__ == "__main__":
    main()
