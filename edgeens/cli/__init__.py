"""The `edgeens` command: `edgeens.cli.options` holds the application and its one error handler; each module here
declares the options of some commands and calls the step functions of the package that owns them."""

from edgeens.cli import deploy, search, train, use  # noqa: F401  (each registers its commands)
from edgeens.cli.options import app

__all__ = ["app"]

if __name__ == "__main__":
    app()
