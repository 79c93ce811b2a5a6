"""melsynth's command line: one tree of commands (``melsynth --help``), handlers in the layers they drive."""
