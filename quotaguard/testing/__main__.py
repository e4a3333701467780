"""``python -m quotaguard.testing --port N``: serve both emulated services until interrupted."""

from quotaguard.cli.admin import emulator

if __name__ == "__main__":
    emulator(prog_name="python -m quotaguard.testing")
