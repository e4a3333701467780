"""``python -m quotaguard.cli``: the same as the ``quotaguard`` command."""

from quotaguard.cli.app import main

if __name__ == "__main__":
    main()
