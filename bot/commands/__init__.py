"""The ``/incident`` command: its grammar, its help, and what each subcommand does."""
