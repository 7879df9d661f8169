"""`python -m indexer` is the same as the `amoca-indexer` command."""

from indexer.cli import main

if __name__ == "__main__":
    main()
