"""One module per subcommand; see ``hepbuild/cli.py`` for the contract."""
